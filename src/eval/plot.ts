/**
 * Small line, scatter and bar plots for the evaluation reports: an SVG (axes, ticks, labels, legend,
 * optional log scales) rendered to PNG by sharp (librsvg; text in DejaVu Sans, the system font).
 * Points whose value is missing (a method that ran out of memory) are marked at the top edge
 * with a label instead of being dropped silently.
 */
import { writeFile } from 'node:fs/promises';
import sharp from 'sharp';

export interface PlotPoint {
  readonly x: number;
  /** null: no value (drawn as a marker at the top edge, labelled `label` or the spec's `missingLabel`) */
  readonly y: number | null;
  /** drawn next to the point */
  readonly label?: string;
}

export interface PlotSeries {
  readonly name: string;
  readonly points: readonly PlotPoint[];
  /** a dashed line (e.g. an analytic reference rather than a measurement) */
  readonly dashed?: boolean;
}

export interface PlotSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly PlotSeries[];
  /**
   * line: points joined in x order; scatter: markers only (default line); bar: x is a category
   * (0, 1, ...: see `xTickLabels`), each series one bar of the category's group, and a dashed
   * series a dashed level across the group instead (a reference, e.g. the majority class)
   */
  readonly kind?: 'line' | 'scatter' | 'bar';
  /** the categories' names of a bar plot, in x order */
  readonly xTickLabels?: readonly string[];
  readonly logX?: boolean;
  readonly logY?: boolean;
  readonly width?: number;
  readonly height?: number;
  /** label of points with no value, e.g. "OOM" (default "n/a") */
  readonly missingLabel?: string;
  /** dashed horizontal reference lines, e.g. chance */
  readonly hlines?: ReadonlyArray<{ readonly y: number; readonly label: string }>;
  /** y axis from zero (linear scale only) */
  readonly yFromZero?: boolean;
  /** ticks to use on the x axis instead of computed ones (e.g. the resolutions measured) */
  readonly xTicks?: readonly number[];
  /** a fixed y range (linear scale), e.g. [0, 100] for accuracy in percent */
  readonly yDomain?: readonly [number, number];
}

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A tick value as short text: 3 significant digits, k/M for thousands and millions. */
export function formatTick(v: number): string {
  const a = Math.abs(v);
  const trim = (x: number): string => String(Number(x.toPrecision(3)));
  if (a >= 1e6) return `${trim(v / 1e6)}M`;
  if (a >= 1e4) return `${trim(v / 1e3)}k`;
  return Number.isInteger(v) ? String(v) : trim(v);
}

/** About `count` round ticks covering [min, max] (steps of 1, 2 or 5 times a power of ten). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) {
    const d = Math.abs(min) || 1;
    return niceTicks(min - d / 2, max + d / 2, count);
  }
  const raw = (max - min) / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const ticks: number[] = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

/** Log-scale ticks: powers of ten spanning [min, max], with 2 and 5 in between when that is under two decades. */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  let hi = Math.ceil(Math.log10(max));
  if (hi === lo) hi++;
  const ticks: number[] = [];
  const fine = hi - lo <= 2;
  for (let e = lo; e <= hi; e++) {
    for (const m of fine ? [1, 2, 5] : [1]) {
      const v = m * 10 ** e;
      if (v >= 10 ** lo && v <= 10 ** hi) ticks.push(Number(v.toPrecision(12)));
    }
  }
  // trim to the data with one tick of margin either side
  const first = Math.max(0, ticks.findIndex((t) => t > min) - 1);
  let last = ticks.length - 1;
  while (last > first + 1 && ticks[last - 1]! >= max) last--;
  return ticks.slice(first, last + 1);
}

interface Axis {
  readonly ticks: number[];
  map(v: number): number;
}

function axis(values: number[], log: boolean, from: number, to: number, fromZero: boolean, fixed?: readonly number[]): Axis {
  if (fixed && fixed.length >= 2) {
    const ticks = [...fixed].sort((p, q) => p - q);
    const f = (v: number): number => (log ? Math.log10(Math.max(v, 1e-300)) : v);
    // a little room either side so the end points are not on the frame
    const span = f(ticks[ticks.length - 1]!) - f(ticks[0]!) || 1;
    const a = f(ticks[0]!) - 0.06 * span;
    const b = f(ticks[ticks.length - 1]!) + 0.06 * span;
    return { ticks, map: (v) => from + ((f(v) - a) / (b - a)) * (to - from) };
  }
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  let min = finite.length ? Math.min(...finite) : log ? 1 : 0;
  let max = finite.length ? Math.max(...finite) : log ? 10 : 1;
  if (log) {
    const ticks = logTicks(min, max);
    const a = Math.log10(ticks[0]!);
    const b = Math.log10(ticks[ticks.length - 1]!);
    return { ticks, map: (v) => from + ((Math.log10(Math.max(v, 1e-300)) - a) / (b - a || 1)) * (to - from) };
  }
  if (fromZero) min = Math.min(0, min);
  if (min === max) max = min + 1;
  const ticks = niceTicks(min, max);
  const a = ticks[0]!;
  const b = ticks[ticks.length - 1]!;
  return { ticks, map: (v) => from + ((v - a) / (b - a || 1)) * (to - from) };
}

/** The plot as SVG text. */
export function plotSvg(spec: PlotSpec): string {
  const W = spec.width ?? 800;
  const H = spec.height ?? 500;
  const legendWidth = Math.min(260, 40 + 7.5 * Math.max(8, ...spec.series.map((s) => s.name.length)));
  const m = { left: 86, right: legendWidth + 20, top: 48, bottom: 64 };
  const x0 = m.left;
  const x1 = W - m.right;
  const y0 = H - m.bottom;
  const y1 = m.top;
  const xs = spec.series.flatMap((s) => s.points.map((p) => p.x));
  const ys = [...spec.series.flatMap((s) => s.points.flatMap((p) => (p.y === null ? [] : [p.y]))), ...(spec.hlines ?? []).map((h) => h.y)];
  const bars = spec.kind === 'bar';
  const groups = bars ? Math.max(spec.xTickLabels?.length ?? 0, ...xs.map((x) => x + 1)) : 0;
  const groupWidth = (x1 - x0) / Math.max(1, groups);
  // a bar plot's categories sit at the centres of equal groups
  const ax: Axis = bars ? { ticks: Array.from({ length: groups }, (_, c) => c), map: (v) => x0 + (v + 0.5) * groupWidth } : axis(xs, spec.logX ?? false, x0, x1, false, spec.xTicks);
  const ay = spec.yDomain && !spec.logY ? axis([...spec.yDomain], false, y0, y1, false) : axis(ys, spec.logY ?? false, y0, y1, (spec.yFromZero ?? false) || bars);
  const font = 'font-family="DejaVu Sans, sans-serif"';
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${(x0 + x1) / 2}" y="28" ${font} font-size="17" font-weight="bold" text-anchor="middle">${esc(spec.title)}</text>`);
  // grid and ticks
  for (const t of ax.ticks) {
    const x = ax.map(t);
    out.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y1}" stroke="#e4e4e4" stroke-width="1"/>`);
    out.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + 5}" stroke="#333"/>`);
    out.push(`<text x="${x}" y="${y0 + 20}" ${font} font-size="12" text-anchor="middle">${esc(bars ? spec.xTickLabels?.[t] ?? formatTick(t) : formatTick(t))}</text>`);
  }
  for (const t of ay.ticks) {
    const y = ay.map(t);
    out.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#e4e4e4" stroke-width="1"/>`);
    out.push(`<line x1="${x0 - 5}" y1="${y}" x2="${x0}" y2="${y}" stroke="#333"/>`);
    out.push(`<text x="${x0 - 8}" y="${y + 4}" ${font} font-size="12" text-anchor="end">${esc(formatTick(t))}</text>`);
  }
  out.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#333" stroke-width="1.2"/>`);
  out.push(`<text x="${(x0 + x1) / 2}" y="${H - 18}" ${font} font-size="14" text-anchor="middle">${esc(spec.xLabel)}${spec.logX ? ' (log scale)' : ''}</text>`);
  out.push(`<text x="20" y="${(y0 + y1) / 2}" ${font} font-size="14" text-anchor="middle" transform="rotate(-90 20 ${(y0 + y1) / 2})">${esc(spec.yLabel)}${spec.logY ? ' (log scale)' : ''}</text>`);
  for (const h of spec.hlines ?? []) {
    const y = ay.map(h.y);
    out.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#777" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${x0 + 6}" y="${y - 5}" ${font} font-size="12" fill="#555">${esc(h.label)}</text>`);
  }
  // series
  const missing = spec.missingLabel ?? 'n/a';
  const solid = spec.series.filter((s) => !s.dashed);
  const barWidth = (0.8 * groupWidth) / Math.max(1, solid.length);
  const base = Math.min(y0, Math.max(y1, ay.map(0)));
  spec.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    if (bars) {
      const slot = solid.indexOf(s);
      s.points.forEach((p) => {
        const centre = slot < 0 ? ax.map(p.x) : ax.map(p.x) - 0.4 * groupWidth + (slot + 0.5) * barWidth;
        if (p.y === null) {
          out.push(`<text x="${centre.toFixed(1)}" y="${y1 + 16}" ${font} font-size="13" font-weight="bold" fill="${colour}" text-anchor="middle">×</text>`);
          out.push(`<text x="${centre.toFixed(1)}" y="${y1 + 30}" ${font} font-size="10" fill="${colour}" text-anchor="middle">${esc(p.label ?? missing)}</text>`);
          return;
        }
        const y = ay.map(p.y);
        if (slot < 0) {
          out.push(`<line x1="${(centre - 0.45 * groupWidth).toFixed(1)}" y1="${y.toFixed(1)}" x2="${(centre + 0.45 * groupWidth).toFixed(1)}" y2="${y.toFixed(1)}" stroke="${colour}" stroke-width="2.5" stroke-dasharray="8 5"/>`);
        } else {
          out.push(`<rect x="${(centre - 0.45 * barWidth).toFixed(1)}" y="${Math.min(y, base).toFixed(1)}" width="${(0.9 * barWidth).toFixed(1)}" height="${Math.abs(base - y).toFixed(1)}" fill="${colour}"/>`);
        }
        if (p.label) out.push(`<text x="${centre.toFixed(1)}" y="${(y - 5).toFixed(1)}" ${font} font-size="11" fill="${colour}" text-anchor="middle">${esc(p.label)}</text>`);
      });
      return;
    }
    const present = s.points.filter((p): p is PlotPoint & { y: number } => p.y !== null).sort((a, b) => a.x - b.x);
    if ((spec.kind ?? 'line') === 'line' && present.length > 1) {
      out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="8 5"' : ''} points="${present.map((p) => `${ax.map(p.x).toFixed(1)},${ay.map(p.y).toFixed(1)}`).join(' ')}"/>`);
    }
    s.points.forEach((p, k) => {
      const x = ax.map(p.x);
      if (p.y === null) {
        const y = y1 + 12 + 14 * i;
        out.push(`<text x="${x}" y="${y + 4}" ${font} font-size="13" font-weight="bold" fill="${colour}" text-anchor="middle">×</text>`);
        out.push(`<text x="${x + 8}" y="${y + 4}" ${font} font-size="11" fill="${colour}">${esc(p.label ?? missing)}</text>`);
        return;
      }
      const y = ay.map(p.y);
      out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${spec.kind === 'scatter' ? 6 : 4}" fill="${colour}" stroke="white" stroke-width="1"/>`);
      // labels alternate above and below so neighbours do not overlap
      if (p.label) out.push(`<text x="${(x + 8).toFixed(1)}" y="${(k % 2 === 0 ? y - 9 : y + 19).toFixed(1)}" ${font} font-size="12" fill="${colour}">${esc(p.label)}</text>`);
    });
  });
  // legend
  const lx = x1 + 18;
  spec.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    const y = y1 + 10 + 22 * i;
    if ((spec.kind ?? 'line') === 'line' || (bars && s.dashed)) out.push(`<line x1="${lx}" y1="${y}" x2="${lx + 24}" y2="${y}" stroke="${colour}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    if (bars && !s.dashed) out.push(`<rect x="${lx + 4}" y="${y - 7}" width="16" height="14" fill="${colour}"/>`);
    if (!bars) out.push(`<circle cx="${lx + 12}" cy="${y}" r="4.5" fill="${colour}"/>`);
    out.push(`<text x="${lx + 32}" y="${y + 4}" ${font} font-size="13">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** The plot as PNG bytes; also written to `file` when given. */
export async function renderPlot(spec: PlotSpec, file?: string): Promise<Buffer> {
  const png = await sharp(Buffer.from(plotSvg(spec))).png().toBuffer();
  if (file) await writeFile(file, png);
  return png;
}
