/**
 * The multiple-choice evaluation: every question of a benchmark answered by one method
 * (answer.ts), accuracy overall and per category against chance, tokens through the trunk and
 * the median latency per question (encode + text tower; decoding the image file is reported
 * apart, as it is the same for every method).
 *
 * Methods that do not depend on the question (lowres, anyres, s2) encode each image once; that
 * encode's time is charged to every question on the image, as if each were asked alone.
 */
import { loadPixelValues } from '../../io/image.js';
import type { TextTokenizer } from '../../io/tokenizer.js';
import type { Pixels } from '../../model/encoder.js';
import type { PS3Model } from '../../model/load.js';
import type { LookCount } from '../../model/selection.js';
import { engineSurvives, isOutOfMemory, type EncodeMethod, type MethodEncoding } from '../../model/baselines.js';
import { answerQuestion } from './answer.js';
import type { BenchItem } from './format.js';

export interface QaEvalOptions {
  readonly method: EncodeMethod;
  readonly looks?: LookCount;
  readonly tokens?: number;
  readonly resolution?: number;
  readonly tileBatch?: number;
  /** use the items' prompt and statements when they have them (default true) */
  readonly hints?: boolean;
  /** preprocessor mean and std (default 0.5, 0.5: every PS3 model) */
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
  readonly onProgress?: (done: number, total: number, correct: number) => void;
}

export interface QaPrediction {
  readonly id: string;
  readonly category: string;
  readonly answer: number;
  readonly predicted: number;
  readonly correct: boolean;
  readonly scores: number[];
  readonly tokens: number;
  readonly tiles: number;
  readonly ms_encode: number;
  readonly ms_text: number;
  readonly ms: number;
}

export interface CategoryResult {
  readonly questions: number;
  readonly correct: number;
  readonly accuracy: number | null;
  /** expected accuracy of guessing: mean of 1 / options */
  readonly chance: number;
}

export interface QaReport {
  readonly method: EncodeMethod;
  readonly settings: { looks: LookCount | null; tokens: number | null; resolution: number | null; hints: boolean };
  /** "ok", or "out of memory" (results then cover the questions answered before it) */
  readonly status: 'ok' | 'out of memory';
  readonly error: string | null;
  /** true when an allocation failed inside the engine (the WASM module is then unusable); false when refused beforehand by the estimate */
  readonly aborted: boolean;
  readonly questions: number;
  readonly answered: number;
  readonly accuracy: number | null;
  readonly chance: number;
  readonly per_category: Record<string, CategoryResult>;
  /** tokens through the trunk per question */
  readonly tokens_median: number | null;
  readonly tokens_mean: number | null;
  readonly tiles_median: number | null;
  readonly ms_per_question_median: number | null;
  readonly ms_encode_median: number | null;
  readonly ms_text_median: number | null;
  readonly ms_decode_median: number | null;
  readonly predictions: QaPrediction[];
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function categoryResults(items: readonly BenchItem[], predictions: readonly QaPrediction[]): Record<string, CategoryResult> {
  const out: Record<string, CategoryResult> = {};
  for (const category of [...new Set(items.map((i) => i.category))].sort()) {
    const asked = items.filter((i) => i.category === category);
    const got = predictions.filter((p) => p.category === category);
    const correct = got.filter((p) => p.correct).length;
    out[category] = {
      questions: asked.length,
      correct,
      accuracy: got.length ? correct / got.length : null,
      chance: asked.reduce((a, i) => a + 1 / i.options.length, 0) / asked.length,
    };
  }
  return out;
}

/** Answer every item with one method. An out-of-memory stops the run and is reported, not thrown. */
export async function evaluateQa(model: PS3Model, tokenizer: TextTokenizer, items: readonly BenchItem[], options: QaEvalOptions): Promise<QaReport> {
  const cfg = model.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const mean = options.mean ?? [0.5, 0.5, 0.5];
  const std = options.std ?? [0.5, 0.5, 0.5];
  const predictions: QaPrediction[] = [];
  const decodeMs: number[] = [];
  let status: QaReport['status'] = 'ok';
  let error: string | null = null;
  let aborted = false;
  const held: { image: { path: string; pixels: Pixels; encoding: MethodEncoding | null } | null } = { image: null };
  let correct = 0;
  const methodOptions = {
    ...(options.looks !== undefined ? { looks: options.looks } : {}),
    ...(options.tokens !== undefined ? { tokens: options.tokens } : {}),
    ...(options.resolution !== undefined ? { resolution: options.resolution } : {}),
    ...(options.tileBatch !== undefined ? { tileBatch: options.tileBatch } : {}),
    hints: options.hints ?? true,
  };
  const forget = (): void => {
    held.image?.encoding?.feature.dispose();
    held.image = null;
  };
  try {
    for (const item of items) {
      if (held.image?.path !== item.imagePath) {
        forget();
        const t0 = performance.now();
        const pv = await loadPixelValues(item.imagePath, { size: S, mean, std });
        decodeMs.push(performance.now() - t0);
        held.image = { path: item.imagePath, pixels: { data: pv.pixels, batch: 1, height: S, width: S }, encoding: null };
      }
      const current = held.image!;
      const { answer, encoding } = await answerQuestion(model, tokenizer, current.pixels, item, options.method, methodOptions, current.encoding ?? undefined);
      if (options.method === 'ps3') encoding.feature.dispose();
      else current.encoding = encoding;
      const ok = answer.predicted === item.answer;
      if (ok) correct++;
      predictions.push({
        id: item.id, category: item.category, answer: item.answer, predicted: answer.predicted, correct: ok, scores: answer.scores.map((s) => Math.round(s * 1e6) / 1e6),
        tokens: answer.tokens, tiles: answer.tiles, ms_encode: answer.msEncode, ms_text: answer.msText, ms: answer.msEncode + answer.msText,
      });
      options.onProgress?.(predictions.length, items.length, correct);
    }
    forget();
  } catch (e) {
    if (!isOutOfMemory(e)) throw e;
    status = 'out of memory';
    error = e instanceof Error ? e.message : String(e);
    aborted = !engineSurvives(e);
    try {
      forget();
    } catch {
      // the engine aborted: nothing can be freed
    }
  }
  const tokens = predictions.map((p) => p.tokens);
  const answeredItems = items.slice(0, predictions.length);
  return {
    method: options.method,
    settings: { looks: options.method === 'ps3' && options.tokens === undefined ? (options.looks ?? 1) : null, tokens: options.tokens ?? null, resolution: options.resolution ?? null, hints: options.hints ?? true },
    status,
    error,
    aborted,
    questions: items.length,
    answered: predictions.length,
    accuracy: predictions.length ? correct / predictions.length : null,
    chance: (answeredItems.length ? answeredItems : items).reduce((a, i) => a + 1 / i.options.length, 0) / (answeredItems.length || items.length),
    per_category: categoryResults(items, predictions),
    tokens_median: median(tokens),
    tokens_mean: tokens.length ? tokens.reduce((a, c) => a + c, 0) / tokens.length : null,
    tiles_median: median(predictions.map((p) => p.tiles)),
    ms_per_question_median: median(predictions.map((p) => p.ms)),
    ms_encode_median: median(predictions.map((p) => p.ms_encode)),
    ms_text_median: median(predictions.map((p) => p.ms_text)),
    ms_decode_median: median(decodeMs),
    predictions,
  };
}

const pct = (x: number | null): string => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
const num = (x: number | null, digits = 0): string => (x === null ? '—' : x.toFixed(digits));

/** A plain-text table: one row per report, overall then per-category accuracy, tokens and latency. */
export function formatQaTable(reports: readonly QaReport[]): string {
  const categories = [...new Set(reports.flatMap((r) => Object.keys(r.per_category)))].sort();
  const header = ['method', 'status', 'answered', 'accuracy', 'chance', ...categories, 'tokens', 'ms/question'];
  const rows = reports.map((r) => {
    const name = r.method === 'ps3' ? `ps3 (${r.settings.tokens !== null ? `${r.settings.tokens} tokens` : `${r.settings.looks} look${r.settings.looks === 1 ? '' : 's'}`})` : r.method;
    return [
      name, r.status, `${r.answered}/${r.questions}`, pct(r.accuracy), pct(r.chance),
      ...categories.map((c) => pct(r.per_category[c]?.accuracy ?? null)), num(r.tokens_median), num(r.ms_per_question_median, 0),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
