/**
 * `ps3 eval reading --model CHECKPOINT --out FILE`: a reading stage's head (`ps3 train-read`) on
 * held-out glyph crops of every palette and on the one-character labels of held-out scenes, cut
 * as a look sees them; JSON report plus a bar chart beside it (src/train/readingEval.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { checkGlyphCropSpec, PALETTES, parseCurriculum, type GlyphCropSpec } from '../data/glyphCrops.js';
import { renderPlot } from '../eval/plot.js';
import { checkHeldOutSeed } from '../eval/retrieval.js';
import { loadReader } from '../train/readingRun.js';
import { readingReport, sceneReadingSet, type ReadingReport } from '../train/readingEval.js';
import { sceneReadingInLook, type LookReading } from '../train/readingLook.js';
import { outputFile, positiveInt, seedOption } from './inputs.js';
import { progressBar } from './progress.js';

export interface EvalReadingCliOptions {
  backend?: string;
  model?: string;
  seed?: string;
  scenes?: string;
  crops?: string;
  inLook?: boolean;
  out?: string;
}

function formatReport(r: ReadingReport, source: string, inLook: LookReading | null): string {
  const pct = (x: number): string => (Number.isNaN(x) ? '—' : `${(100 * x).toFixed(1)}%`);
  const look = inLook ? [`  scene characters in a look (${inLook.lookTokens} high-res tokens a look, median): ${pct(inLook.accuracy)} of ${inLook.glyphs}`] : [];
  return [
    `reading head of ${source} (chance ${pct(r.chance)})`,
    `  glyph crops (${r.cropsPerPalette} a palette): ${PALETTES.map((p) => `${p} ${pct(r.crops[p])}`).join(', ')}`,
    `  scene characters: ${pct(r.scenes.accuracy)} of ${r.scenes.glyphs} in ${r.scenes.count} scenes; ${Object.entries(r.scenes.byKind).map(([k, v]) => `${k}s ${pct(v.accuracy)} of ${v.n}`).join(', ')}`,
    `  by glyph height: ${r.scenes.byHeight.map((b) => `${b.px} px ${pct(b.accuracy)} of ${b.n}`).join(', ')}`,
    ...look,
  ].join('\n');
}

export async function evalReadingCommand(o: EvalReadingCliOptions): Promise<number> {
  if (!o.model) throw new UserError('--model DIR is required (a "ps3 train-read" checkpoint folder)');
  if (!o.out) throw new UserError('--out FILE is required (the JSON report; the chart goes beside it as .png)');
  const out = path.resolve(outputFile('--out', o.out));
  const picture = out.replace(/\.json$/i, '') + '.png';
  outputFile('--out', picture);
  const seed = seedOption(o.seed) ?? HELDOUT_SEED_BASE;
  checkHeldOutSeed(seed, false);
  const scenes = positiveInt('scenes', o.scenes) ?? 60;
  const crops = positiveInt('crops', o.crops) ?? 720;
  if (scenes < 1 || crops < 1) throw new UserError('--scenes and --crops must be at least 1');
  if (!fs.existsSync(o.model)) throw new UserError(`--model ${o.model}: no such folder`);
  await initEngine(o);
  const reader = loadReader(o.model);
  // the run's crops when its checkpoint says, else the stage's defaults
  const spec: GlyphCropSpec = reader.crops ?? { size: 56, glyphPx: [18, 32], curriculum: parseCurriculum('named') };
  checkGlyphCropSpec(spec);
  const S = reader.model.config.vision.scales[reader.model.config.vision.scales.length - 1]!;
  process.stderr.write(`eval reading: ${o.model}; held-out seed ${seed}: ${crops} glyph crops a palette, ${scenes} scenes at ${S} px in ${spec.size} px blocks\n`);
  const bar = progressBar(scenes, 'scenes');
  const set = sceneReadingSet(reader.model, seed, scenes, spec.size, (done) => bar.update(done));
  bar.stop();
  const report = readingReport(reader.model, reader.weights, { spec, cropSeed: seed, crops, scenes: set });
  let inLook: LookReading | null = null;
  if (o.inLook) {
    const lookBar = progressBar(scenes, 'scenes in a look');
    inLook = await sceneReadingInLook(reader.model, reader.weights, seed, scenes, spec.size, (done) => lookBar.update(done));
    lookBar.stop();
  }
  reader.weights.dispose();
  process.stdout.write(`${formatReport(report, o.model, inLook)}\n`);
  const scenesOut = inLook ? { ...report.scenes, in_look: { accuracy: inLook.accuracy, glyphs: inLook.glyphs, look_tokens: inLook.lookTokens } } : report.scenes;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify({ model: o.model, seed, scale: S, crop: spec.size, glyph_px: spec.glyphPx, ...report, scenes: scenesOut }, null, 2)}\n`);
  const kinds = Object.entries(report.scenes.byKind);
  const labels = [...PALETTES, ...kinds.map(([k, v]) => `${k}s (${v.n})`), ...(inLook ? ['in a look (all)'] : [])];
  const values = [...PALETTES.map((p) => report.crops[p]), ...kinds.map(([, v]) => v.accuracy), ...(inLook ? [inLook.accuracy] : [])];
  await renderPlot(
    {
      title: `Reading head: ${o.model.length > 40 ? `…${o.model.slice(-39)}` : o.model}`,
      xLabel: 'held-out glyph crops by palette, then scene characters by kind (count)',
      yLabel: 'accuracy',
      kind: 'bar',
      xTickLabels: labels,
      series: [{ name: 'accuracy', points: values.map((y, x) => ({ x, y: Number.isNaN(y) ? null : y, label: Number.isNaN(y) ? 'none' : y.toFixed(2) })) }],
      hlines: [{ y: report.chance, label: 'chance' }],
      yDomain: [0, 1],
    },
    picture,
  );
  process.stderr.write(`wrote ${out} and ${picture}\n`);
  return 0;
}
