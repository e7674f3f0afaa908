/**
 * `ps3 demo` (`npm run demo`): the main job on embedded defaults — synthetic 4K data, a short
 * pre-training of the `tiny` preset, PS3 against low-res, AnyRes and S² on 4KPro-lite and local
 * retrieval, cost versus resolution, the bundled 4K sample encoded with a prompt, and a report
 * (`report.md`, `report.json`, PNGs) in the output folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { DEFAULT_DEMO, runDemo } from '../eval/demo.js';
import { positiveInt } from './inputs.js';

export const SAMPLE_IMAGE = fileURLToPath(new URL('../../../assets/sample-4k.jpg', import.meta.url));
/** The PS3 model the project trained and ships (models/ps3-tiny/TRAINING.md) */
export const SHIPPED_MODEL = fileURLToPath(new URL('../../../models/ps3-tiny', import.meta.url));

export interface DemoCliOptions {
  backend?: string;
  out: string;
  model?: string;
  selection?: string;
  image?: string;
  prompt?: string;
  trainMinutes?: string;
  trainImages?: string;
  batch?: string;
  questions?: string;
  retrieval?: string;
  candidates?: string;
  costResolutions?: string;
  seed?: string;
  quick?: boolean;
}

export async function demoCommand(o: DemoCliOptions): Promise<number> {
  const backend = await initEngine(o);
  const quick = o.quick === true;
  const minutes = o.trainMinutes !== undefined ? Number(o.trainMinutes) : quick ? 0.5 : DEFAULT_DEMO.trainMinutes;
  if (!Number.isFinite(minutes) || minutes <= 0) throw new UserError(`--train-minutes must be a positive number, got "${o.trainMinutes}"`);
  const resolutions = (o.costResolutions ?? (quick ? '756,1512' : DEFAULT_DEMO.costResolutions.join(','))).split(',').map((x) => positiveInt('cost-resolutions', x.trim())!);
  const model = o.model ?? SHIPPED_MODEL;
  if (!fs.existsSync(path.join(model, 'config.json'))) throw new UserError(`--model ${model}: not a PS3 model folder (no config.json)`);
  const sampleImage = o.image ?? SAMPLE_IMAGE;
  if (!fs.existsSync(sampleImage) || !fs.statSync(sampleImage).isFile()) throw new UserError(`--image ${sampleImage}: no such file`);
  const started = performance.now();
  const log = (stage: string, message: string): void => {
    const t = ((performance.now() - started) / 1000).toFixed(0).padStart(4);
    process.stderr.write(`[${t}s] ${stage.padEnd(9)} ${message}\n`);
  };
  log('demo', `backend ${backend}; writing to ${path.resolve(o.out)}${quick ? ' (quick: small budgets)' : ''}`);
  const report = await runDemo(
    {
      out: o.out,
      model,
      selectionScenes: positiveInt('selection', o.selection) ?? (quick ? 3 : DEFAULT_DEMO.selectionScenes),
      sampleImage,
      prompt: o.prompt ?? DEFAULT_DEMO.prompt,
      trainMinutes: minutes,
      trainImages: positiveInt('train-images', o.trainImages) ?? (quick ? 8 : DEFAULT_DEMO.trainImages),
      batch: positiveInt('batch', o.batch) ?? DEFAULT_DEMO.batch,
      questions: positiveInt('questions', o.questions) ?? (quick ? 4 : DEFAULT_DEMO.questions),
      retrievalTriples: positiveInt('retrieval', o.retrieval) ?? (quick ? 4 : DEFAULT_DEMO.retrievalTriples),
      candidates: positiveInt('candidates', o.candidates) ?? DEFAULT_DEMO.candidates,
      costResolutions: resolutions,
      seed: positiveInt('seed', o.seed) ?? DEFAULT_DEMO.seed,
    },
    log,
  );
  const qa = Object.entries(report.qa).map(([m, q]) => `${m} ${q.accuracy ?? q.status} (${q.tokens ?? '—'} tokens)`).join(', ');
  const retrieval = Object.entries(report.retrieval).map(([m, a]) => `${m} ${a ?? '—'}`).join(', ');
  process.stdout.write(`4KPro-lite accuracy: ${qa}; chance ${report.chance.qa}\n`);
  process.stdout.write(`local retrieval accuracy: ${retrieval}; chance ${report.chance.retrieval}\n`);
  process.stdout.write(`wrote ${path.join(o.out, 'report.md')}, ${path.join(o.out, 'report.json')} and ${report.pictures.length} pictures in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  return 0;
}
