/**
 * `ps3 eval selection --model DIR [--seed S] [--count N] [--looks N] [--size PX] --out FILE`:
 * does PS3 look where it should? Top-down recall of each held-out region's box (caption as
 * prompt), bottom-up recall of every small object (prior prompt), and what a random choice of the
 * same budget covers; JSON report plus a PNG of examples beside it (src/eval/selectionRecall.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { toPng } from '../io/image.js';
import { UserError } from '../errors.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { evalTokenizer } from '../eval/qa/text.js';
import { synthRetrievalImages } from '../eval/retrieval.js';
import { evaluateSelection, examplesPicture, type SelectionRecallReport } from '../eval/selectionRecall.js';
import { intOption, modelFrom, positiveInt } from './inputs.js';
import { progressBar } from './progress.js';

export const SELECTION_HELP = `
Recall: the fraction of a box's patches at the top scale (those the box touches, as in
pre-training's ground truth) that the first --looks looks choose.
  topdown   each held-out region, its caption as the prompt
  bottomup  every small object of the scene, the learned prior prompt
  random    a uniformly random choice of as many top-scale patches, in expectation
  oracle    (--oracle-steps N) per region a free prompt fitted to its own box: the most any
            prompt can do with this model's selection features (an upper bound, not a method)
Held-out synthetic scenes: seeds from ${HELDOUT_SEED_BASE} (--seed), rendered at --size (default
the model's top scale). The picture (FILE with .png) shows examples: the box in red, the chosen
top-scale patches shaded, and a zoom on the box.`;

export interface EvalSelectionCliOptions {
  backend?: string;
  model?: string;
  preset?: string;
  seed?: string;
  size?: string;
  count?: string;
  looks?: string;
  examples?: string;
  oracleSteps?: string;
  force?: boolean;
  out?: string;
}

/** One line per summary, for people. */
export function formatSelectionReport(r: SelectionRecallReport): string {
  const pct = (x: number | null): string => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
  const fixed = (x: number | null): string => (x === null ? '—' : x.toFixed(3));
  const lines = [
    `selection recall at ${r.scale} px (${r.grid[0]}x${r.grid[1]} patches, ${r.looks} look${r.looks === 1 ? '' : 's'}, ${r.top_budget_per_look} top-scale patches a look), ${r.images} images`,
    `  top-down  ${pct(r.topdown.recall)} of box patches (${r.topdown.cases} regions; whole box ${pct(r.topdown.full)})`,
    ...Object.entries(r.topdown.per_kind).map(([k, s]) => `    ${k.padEnd(14)} ${pct(s.recall)} (${s.cases})`),
    `  bottom-up ${pct(r.bottomup.recall)} of object patches (${r.bottomup.cases} objects; whole object ${pct(r.bottomup.full)})`,
    `  controls  the same boxes with another caption's look ${pct(r.controls.other_caption.recall)} (${r.controls.other_caption.cases}), with the bottom-up look ${pct(r.controls.prior_prompt.recall)} (top-down above them: the caption steers selection)`,
    `  random    ${pct(r.random.recall)}`,
    ...(r.oracle ? [`  oracle    ${pct(r.oracle.recall)} (a prompt fitted to each box, ${r.oracle.steps} steps: an upper bound)`] : []),
    `  prompts   cosine between two captions' prompts ${fixed(r.prompts.between_captions)}, with the prior prompt ${fixed(r.prompts.with_prior)} (near 1: selection cannot tell captions apart)`,
  ];
  return lines.join('\n');
}

export async function evalSelectionCommand(o: EvalSelectionCliOptions): Promise<number> {
  if (!o.out) throw new UserError('--out FILE is required (the JSON report; the picture goes beside it as .png)');
  const out = path.resolve(o.out);
  const outDir = path.dirname(out);
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new UserError(`--out ${o.out} is a folder; give a file name for the JSON report`);
  if (fs.existsSync(outDir) && !fs.statSync(outDir).isDirectory()) throw new UserError(`--out ${o.out}: ${outDir} is not a folder`);
  const count = positiveInt('count', o.count) ?? 16;
  const looks = positiveInt('looks', o.looks) ?? 1;
  const examples = positiveInt('examples', o.examples) ?? 4;
  const oracleSteps = o.oracleSteps === undefined ? 0 : intOption('oracle-steps', o.oracleSteps, { min: 0 })!;
  const seed = positiveInt('seed', o.seed) ?? HELDOUT_SEED_BASE;
  if (count < 1) throw new UserError('--count must be at least 1');
  if (looks < 1) throw new UserError('--looks must be at least 1');
  await initEngine(o);
  const model = await modelFrom({ ...(o.model ? { model: o.model } : {}), ...(o.preset ? { preset: o.preset } : {}) }, 'all');
  const tok = await evalTokenizer(model, model.folder);
  const cfg = model.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const size = positiveInt('size', o.size) ?? S;
  if (size < 32) throw new UserError(`--size must be at least 32, got ${size}`);
  const images = synthRetrievalImages(seed, count, size, S, o.force ?? false);
  fs.mkdirSync(outDir, { recursive: true });
  process.stderr.write(`eval selection: ${count} held-out scenes (seed ${seed}, ${size} px) at the top scale ${S}; model ${model.source}\n`);
  const bar = progressBar(count, 'selection', 'top-down recall {recall}');
  const { report, examples: shown } = await evaluateSelection(model, tok.tokenizer, images, {
    looks,
    examples,
    oracleSteps,
    onProgress: (done, _total, recall) => bar.update(done, { recall: `${(100 * recall).toFixed(1)}%` }),
  });
  bar.stop();
  process.stdout.write(`${formatSelectionReport(report)}\n`);
  const json = { model: model.source, tokenizer: tok.source, synth: true, seed, size, count, ...report };
  fs.writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
  const picture = out.replace(/\.json$/i, '') + '.png';
  if (shown.length) fs.writeFileSync(picture, await toPng(examplesPicture(shown, cfg.trunk.patchSize, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])));
  process.stderr.write(`wrote ${out}${shown.length ? ` and ${picture}` : ''}\n`);
  return 0;
}
