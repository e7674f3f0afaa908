/**
 * `ps3 eval probe --model DIR|ID | --vila DIR [--seed S] [--count N] --out FILE`: what PS3's
 * top-scale tokens carry about an object — a linear (ridge) probe of each object's colour, shape
 * and character from the tokens of its box, forced into a look, on held-out synthetic scenes at
 * the model's top scale, against the box's raw pixels and the majority class; with a VILA-HD
 * folder, its PS3 and what its ps3 projector passes on to the LM as well; JSON report plus a bar
 * chart beside it (src/eval/probe.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { renderPlot } from '../eval/plot.js';
import { checkHeldOutSeed } from '../eval/retrieval.js';
import { evaluateProbe, MIN_PROBE_SCENES, PROBE_ATTRIBUTES, PROBE_LAMBDAS, probeChart, splitSizes, synthProbeScenes, type ProbeReport } from '../eval/probe.js';
import { loadVilaHd } from '../mllm/model.js';
import { modelFrom, outputFile, positiveInt, seedOption } from './inputs.js';
import { progressBar } from './progress.js';

export const PROBE_HELP = `
Each object of --count held-out synthetic scenes (seeds from --seed, default ${HELDOUT_SEED_BASE},
drawn at the model's top scale as "ps3 data synth" draws them) has its box forced into one look;
the final-normed top-scale tokens of the patches the box touches give its features:
  mean_tokens  their mean
  grid_tokens  their means over a 4 x 4 grid of the box (where in the box, not only what)
  pooled       the trunk's attention-pooling head over them, as pre-training pools a box
               (what an attention readout can take from the tokens that a mean cannot)
  pixels       the box's normalised pixels resized to 8 x 8 (a baseline without the model)
A one-vs-rest ridge classifier per attribute (colour; shape, signs have none; the character
written on it, where there is exactly one) is fitted on the first 60 % of the scenes, its λ
(${PROBE_LAMBDAS.join(', ')}) chosen on the next 20 %, and its accuracy reported on the last
20 %, with the majority class's. The chart (FILE with .png) shows the test accuracies.
With --vila DIR (a VILA-HD folder holding a ps3 LM) the folder's PS3 is probed, and one more
feature set is read:
  projected    the mean of the LM inputs its ps3 projector makes of the whole 2 x 2 cells
               touching the box: what of the tokens reaches the LM
Each box is then forced widened to whole 2 x 2 cells, as the LM's reading stage reads an object;
an object none of whose cells reached the projector whole is not probed.`;

export interface EvalProbeCliOptions {
  backend?: string;
  model?: string;
  preset?: string;
  vila?: string;
  seed?: string;
  count?: string;
  force?: boolean;
  out?: string;
}

/** The report as a table, for people. */
export function formatProbeReport(r: ProbeReport): string {
  const pct = (x: number | null): string => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
  const head = ['attribute', 'test', 'classes', 'majority', ...r.features];
  const rows = PROBE_ATTRIBUTES.map((a) => {
    const s = r.attributes[a];
    return [a, String(s.n.test), String(s.classes.fit), pct(s.majority), ...r.features.map((f) => `${pct(s[f])} (λ ${s.lambda[f] ?? '—'})`)];
  });
  const widths = head.map((h, j) => Math.max(h.length, ...rows.map((row) => row[j]!.length)));
  const line = (cells: readonly string[]): string => `  ${cells.map((c, j) => c.padEnd(widths[j]!)).join('  ')}`.trimEnd();
  const perObject = r.tokens_per_object === null ? '' : `, ${r.tokens_per_object.toFixed(1)} top-scale tokens an object`;
  return [
    `linear probe of top-scale tokens at ${r.scale} px (${r.grid[0]}x${r.grid[1]} patches): ${r.scenes} scenes (fit ${r.split.fit}, choose ${r.split.choose}, test ${r.split.test}), ${r.objects.probed} of ${r.objects.total} objects in ${r.looks} looks${perObject}`,
    line(head),
    ...rows.map(line),
    `  (test: objects in the test scenes; classes: in the fit scenes; accuracy on the test scenes, with the λ the choose scenes picked)`,
  ].join('\n');
}

export async function evalProbeCommand(o: EvalProbeCliOptions): Promise<number> {
  if (!o.out) throw new UserError('--out FILE is required (the JSON report; the chart goes beside it as .png)');
  const out = path.resolve(outputFile('--out', o.out));
  const picture = out.replace(/\.json$/i, '') + '.png';
  outputFile('--out', picture);
  const count = positiveInt('count', o.count) ?? 60;
  if (count < MIN_PROBE_SCENES) throw new UserError(`--count must be at least ${MIN_PROBE_SCENES} (the scenes split 60/20/20 into fit, choose and test), got ${count}`);
  const seed = seedOption(o.seed) ?? HELDOUT_SEED_BASE;
  const force = o.force ?? false;
  checkHeldOutSeed(seed, force);
  if (o.vila !== undefined && (o.model !== undefined || o.preset !== undefined)) throw new UserError(`--vila ${o.vila} probes the PS3 its folder names: give it without --model or --preset`);
  await initEngine(o);
  const vila = o.vila !== undefined ? loadVilaHd(o.vila, { methods: ['ps3'] }) : null;
  const model = vila ? vila.ps3 : await modelFrom({ ...(o.model ? { model: o.model } : {}), ...(o.preset ? { preset: o.preset } : {}) }, 'vision');
  // a VILA-HD folder's PS3 is named as the folder names it (models/vila-hd-tiny/../ps3-tiny -> models/ps3-tiny), not by the absolute path it was loaded from
  const source = vila && !path.isAbsolute(vila.config.ps3Model) ? path.normalize(path.join(vila.source, vila.config.ps3Model)) : model.source;
  const cfg = model.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const scenes = synthProbeScenes(seed, count, S, force);
  const split = splitSizes(count);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  process.stderr.write(`eval probe: ${count} held-out scenes (seed ${seed}) at the top scale ${S}: fit ${split.fit}, choose ${split.choose}, test ${split.test}; model ${source}${vila ? ` (of ${vila.source})` : ''}\n`);
  const bar = progressBar(count, 'probe', 'objects {objects}');
  const report = await evaluateProbe(model, scenes, { ...(vila ? { projector: { weights: vila.weights, method: 'ps3' } } : {}), onProgress: (done, _total, objects) => bar.update(done, { objects: String(objects) }) });
  bar.stop();
  process.stdout.write(`${formatProbeReport(report)}\n`);
  fs.writeFileSync(out, `${JSON.stringify({ model: source, ...(vila ? { vila: vila.source } : {}), synth: true, seed, ...report }, null, 2)}\n`);
  // the title is one centred line of the chart's width: a long folder path keeps its end
  const title = vila ? vila.source : source;
  const name = title.length > 36 ? `…${title.slice(-35)}` : title;
  await renderPlot(probeChart(report, `Linear probe: ${name}, ${count} scenes at ${S} px`), picture);
  process.stderr.write(`wrote ${out} and ${picture}\n`);
  return 0;
}
