/**
 * `ps3 demo` (`npm run demo`): the main job on embedded defaults — the shipped VILA-HD
 * (`models/vila-hd-tiny`) on a fresh held-out 4KPro-lite (PS3 against the baselines it holds LMs
 * for, the scaling curves, where it looked); the shipped PS3 (`models/ps3-tiny`): where it looks
 * on held-out scenes, local retrieval, cost versus resolution, the bundled 4K sample encoded with
 * a prompt, a short fine-tuning run from it; and a report (`report.md`, `report.json`, PNGs) in
 * the output folder. `--preset NAME` pre-trains that shape from random weights first instead.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine } from '../tensor/engine.js';
import { isUserError, UserError } from '../errors.js';
import { presetConfig } from '../model/presets.js';
import { readConfigFile } from '../model/load.js';
import { isVilaFolder, readVilaConfig } from '../mllm/config.js';
import { configAtResolution } from '../eval/cost.js';
import { DEFAULT_DEMO, runDemo } from '../eval/demo.js';
import { inputImage, intOption, listOption, numberOption, outputFolder, seedOption } from './inputs.js';

export const SAMPLE_IMAGE = fileURLToPath(new URL('../../../assets/sample-4k.jpg', import.meta.url));
/** The PS3 model the project trained and ships (models/ps3-tiny/TRAINING.md) */
export const SHIPPED_MODEL = fileURLToPath(new URL('../../../models/ps3-tiny', import.meta.url));
/** The VILA-HD the project trained and ships (models/vila-hd-tiny/TRAINING.md) */
export const SHIPPED_VILA = fileURLToPath(new URL('../../../models/vila-hd-tiny', import.meta.url));

export interface DemoCliOptions {
  backend?: string;
  out: string;
  image?: string;
  prompt?: string;
  trainMinutes?: string;
  trainImages?: string;
  batch?: string;
  questions?: string;
  slowQuestions?: string;
  scalingQuestions?: string;
  looks?: string;
  baselineResolution?: string;
  vila?: string;
  retrieval?: string;
  candidates?: string;
  costResolutions?: string;
  seed?: string;
  quick?: boolean;
  preset?: string;
  model?: string;
  selection?: string;
}

export async function demoCommand(o: DemoCliOptions): Promise<number> {
  // everything is checked before the first stage: a mistake must not cost a 10-minute run
  const quick = o.quick === true;
  if (o.preset !== undefined && o.model !== undefined) throw new UserError('give --model DIR (a trained model) or --preset NAME (pre-trained here first), not both');
  const preset = o.preset;
  const model = preset === undefined ? o.model ?? SHIPPED_MODEL : undefined;
  if (model !== undefined && !fs.existsSync(path.join(model, 'config.json'))) throw new UserError(`--model ${model}: not a PS3 model folder (no config.json)`);
  const config = preset !== undefined ? presetConfig(preset) : readConfigFile(path.join(model!, 'config.json'));
  const minutes = numberOption('train-minutes', o.trainMinutes, { min: 0, above: true }) ?? (quick ? 0.5 : DEFAULT_DEMO.trainMinutes);
  const s0 = config.vision.scales[0]!;
  const defaultResolutions = quick ? [2 * s0, 4 * s0] : s0 === 378 ? DEFAULT_DEMO.costResolutions : [2 * s0, 4 * s0, 10 * s0];
  const costResolutions = o.costResolutions !== undefined ? listOption('cost-resolutions', o.costResolutions, (x) => intOption('cost-resolutions', x, { min: 1 })!) : [...defaultResolutions];
  for (const r of costResolutions) {
    try {
      configAtResolution(config, r);
    } catch (e) {
      throw isUserError(e) ? new UserError(`--cost-resolutions: ${e.message}`) : e;
    }
  }
  const vila = o.vila ?? SHIPPED_VILA;
  if (!isVilaFolder(vila)) throw new UserError(`--vila ${vila}: not a VILA-HD folder (no config.json with model_type "vila-hd")`);
  const vilaConfig = readVilaConfig(path.join(vila, 'config.json'));
  const vilaPs3 = path.resolve(vila, vilaConfig.ps3Model);
  if (!fs.existsSync(path.join(vilaPs3, 'config.json'))) throw new UserError(`--vila ${vila}: its ps3_model ${vilaPs3} is not a PS3 model folder (no config.json)`);
  const vilaScales = readConfigFile(path.join(vilaPs3, 'config.json')).vision.scales;
  const top = vilaScales[vilaScales.length - 1]!;
  const baselineResolution = intOption('baseline-resolution', o.baselineResolution, { min: vilaScales[0]!, max: top });
  const questions = intOption('questions', o.questions, { min: 1 }) ?? (quick ? 4 : DEFAULT_DEMO.questions);
  const looks = o.looks !== undefined ? listOption('looks', o.looks, (x) => intOption('looks', x, { min: 1 })!) : [...DEFAULT_DEMO.looks];
  const prompt = o.prompt ?? DEFAULT_DEMO.prompt;
  if (prompt.trim() === '') throw new UserError('--prompt must not be empty');
  const options = {
    out: outputFolder('--out', o.out),
    sampleImage: await inputImage('--image', o.image ?? SAMPLE_IMAGE),
    ...(preset !== undefined ? { preset } : { model: model! }),
    selectionScenes: intOption('selection', o.selection, { min: 1 }) ?? (quick ? 2 : DEFAULT_DEMO.selectionScenes),
    quick,
    command: ['ps3', ...process.argv.slice(2)].map((a) => (/^[\w./:=,@+-]+$/.test(a) ? a : JSON.stringify(a))).join(' '),
    prompt,
    trainMinutes: minutes,
    trainImages: intOption('train-images', o.trainImages, { min: 1 }) ?? (quick ? 4 : DEFAULT_DEMO.trainImages),
    batch: intOption('batch', o.batch, { min: 1 }) ?? DEFAULT_DEMO.batch,
    vila,
    questions,
    slowQuestions: intOption('slow-questions', o.slowQuestions, { min: 1 }) ?? (quick ? 2 : Math.min(questions, DEFAULT_DEMO.slowQuestions)),
    scalingQuestions: intOption('scaling-questions', o.scalingQuestions, { min: 1 }) ?? (quick ? 2 : Math.min(questions, DEFAULT_DEMO.scalingQuestions)),
    looks: quick && o.looks === undefined ? [1, 2] : looks,
    ...(baselineResolution !== undefined ? { baselineResolution } : {}),
    retrievalTriples: intOption('retrieval', o.retrieval, { min: 1 }) ?? (quick ? 2 : DEFAULT_DEMO.retrievalTriples),
    candidates: intOption('candidates', o.candidates, { min: 2 }) ?? DEFAULT_DEMO.candidates,
    costResolutions,
    seed: seedOption(o.seed) ?? DEFAULT_DEMO.seed,
  };
  const backend = await initEngine(o);
  const started = performance.now();
  const log = (stage: string, message: string): void => {
    const t = ((performance.now() - started) / 1000).toFixed(0).padStart(4);
    process.stderr.write(`[${t}s] ${stage.padEnd(9)} ${message}\n`);
  };
  log('demo', `backend ${backend}; writing to ${path.resolve(o.out)}${quick ? ' (quick: small budgets)' : ''}`);
  const report = await runDemo(options, log);
  const qa = Object.entries(report.qa).map(([m, q]) => `${m} ${q.accuracy ?? q.status} (${q.answered ?? 0} questions, ${q.tokens ?? '—'} tokens)`).join(', ');
  const retrieval = Object.entries(report.retrieval).map(([m, a]) => `${m} ${a ?? '—'}`).join(', ');
  process.stdout.write(`held-out 4KPro-lite, VILA-HD accuracy: ${qa}; chance ${report.chance.qa}\n`);
  const curve = (ps: typeof report.scaling.test_time): string => ps.map((p) => `${p.x}: ${p.accuracy ?? '—'}`).join(', ');
  process.stdout.write(`test-time scaling (looks: accuracy): ${curve(report.scaling.test_time)}; resolution at ${report.scaling.budget} tokens (top scale: accuracy): ${curve(report.scaling.resolution)}\n`);
  process.stdout.write(`local retrieval accuracy: ${retrieval}; chance ${report.chance.retrieval}\n`);
  process.stdout.write(`wrote ${path.join(o.out, 'report.md')}, ${path.join(o.out, 'report.json')} and ${report.pictures.length} pictures in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  return 0;
}
