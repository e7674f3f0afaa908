/**
 * `ps3 train-mllm --ps3 DIR --method ps3|lowres|anyres|s2 --out DIR [--resume]`: VILA-HD's LM,
 * projector and (ps3) prompt head trained on 4KPro-lite-style questions over synthetic scenes
 * (seeds below the held-out base) with PS3 frozen, or with its selection modules tuned too
 * (`--tune-selection`); see src/mllm/train.ts.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { num } from './zodArgs.js';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { ENCODE_METHODS } from '../model/baselines.js';
import { trainVilaHd, type TrainVilaOptions } from '../mllm/train.js';
import { MIX_TASKS, TRAIN_TASKS } from '../mllm/trainData.js';
import { progressBar, type Progress } from './progress.js';

const int = (name: string) => num(name).pipe(z.number().int(`--${name} must be an integer`));

const schema = z.object({
  ps3: z.string().optional(),
  out: z.string({ message: '--out DIR is required' }),
  method: z.enum(ENCODE_METHODS, { message: `--method must be one of ${ENCODE_METHODS.join(', ')}` }),
  preset: z.string(),
  context: int('context').pipe(z.number().min(8, '--context must be an integer >= 8')).optional(),
  projectorHidden: int('projector-hidden').pipe(z.number().positive('--projector-hidden must be positive')).optional(),
  steps: int('steps').pipe(z.number().positive('--steps must be positive')),
  batch: int('batch').pipe(z.number().positive('--batch must be positive')),
  lr: num('lr').pipe(z.number().positive('--lr must be positive')),
  warmup: int('warmup').pipe(z.number().nonnegative('--warmup must be >= 0')),
  clip: num('clip').pipe(z.number().nonnegative('--clip must be >= 0 (0 = off)')),
  seed: int('seed'),
  dataSeed: int('data-seed'),
  images: int('images').pipe(z.number().positive('--images must be positive')),
  looks: int('looks').pipe(z.number().positive('--looks must be positive')),
  minLooks: int('min-looks').pipe(z.number().positive('--min-looks must be positive')).optional(),
  evidenceFraction: num('evidence-fraction').pipe(z.number().min(0, '--evidence-fraction must be from 0 to 1').max(1, '--evidence-fraction must be from 0 to 1')).optional(),
  decoyLooks: num('decoy-looks').pipe(z.number().min(0, '--decoy-looks must be from 0 to 1').max(1, '--decoy-looks must be from 0 to 1')).optional(),
  resolution: int('resolution').optional(),
  perCategory: int('per-category').pipe(z.number().min(1, '--per-category must be from 1 to 16').max(16, '--per-category must be from 1 to 16')).optional(),
  task: z.enum(TRAIN_TASKS, { message: `--task must be one of ${TRAIN_TASKS.join(', ')}` }).optional(),
  captions: int('captions').pipe(z.number().min(1, '--captions must be from 1 to 32').max(32, '--captions must be from 1 to 32')).optional(),
  mix: z.enum(MIX_TASKS, { message: `--mix must be one of ${MIX_TASKS.join(', ')}` }).optional(),
  captionShare: num('caption-share').optional(),
  readObjects: z.boolean().default(false),
  selectionWeight: num('selection-weight').pipe(z.number().nonnegative('--selection-weight must be >= 0')),
  choiceWeight: num('choice-weight').pipe(z.number().nonnegative('--choice-weight must be >= 0')).optional(),
  boxLoss: z.enum(['bce', 'balanced', 'softmax'], { message: '--box-loss must be bce, balanced or softmax' }),
  saveEvery: int('save-every').pipe(z.number().positive('--save-every must be positive')),
  maxMinutes: num('max-minutes').pipe(z.number().nonnegative('--max-minutes must be >= 0')),
  resume: z.boolean().default(false),
  embedPs3: z.boolean().default(false),
  cache: z.string().optional(),
  cacheOnly: z.boolean().default(false),
  tuneSelection: z.union([z.boolean(), z.enum(['all', 'projections'], { message: '--tune-selection takes all (the default) or projections' })]).default(false),
  selectionLr: num('selection-lr').pipe(z.number().positive('--selection-lr must be positive')).optional(),
  tuneTrunk: int('tune-trunk').pipe(z.number().positive('--tune-trunk must be a positive number of blocks')).optional(),
  trunkLr: num('trunk-lr').pipe(z.number().positive('--trunk-lr must be positive')).optional(),
  threads: int('threads').pipe(z.number().positive('--threads must be positive')).optional(),
  init: z.string().min(1, '--init needs a VILA-HD folder').optional(),
  initMethod: z.enum(ENCODE_METHODS, { message: `--init-method must be one of ${ENCODE_METHODS.join(', ')}` }).optional(),
}).refine((o) => o.initMethod === undefined || o.init !== undefined, { message: '--init-method names whose weights --init DIR takes: give --init too' });

export type TrainMllmCliOptions = Record<string, string | boolean | undefined>;

export async function trainMllmCommand(raw: TrainMllmCliOptions): Promise<number> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new UserError(parsed.error.issues[0]!.message);
  const o = parsed.data;
  await initEngine({ backend: raw['backend'] as string | undefined });
  const options: TrainVilaOptions = {
    ...(o.ps3 ? { ps3: o.ps3 } : {}),
    out: o.out, method: o.method, preset: o.preset, ...(o.context !== undefined ? { contextLength: o.context } : {}), ...(o.projectorHidden !== undefined ? { projectorHidden: o.projectorHidden } : {}), steps: o.steps, batch: o.batch, lr: o.lr, warmup: o.warmup, clip: o.clip, seed: o.seed,
    dataSeed: o.dataSeed, images: o.images, looks: o.looks, ...(o.minLooks !== undefined ? { minLooks: o.minLooks } : {}), ...(o.resolution !== undefined ? { resolution: o.resolution } : {}), ...(o.perCategory !== undefined ? { perCategory: o.perCategory } : {}),
    ...(o.evidenceFraction !== undefined ? { evidenceFraction: o.evidenceFraction } : {}), ...(o.decoyLooks !== undefined ? { decoyLooks: o.decoyLooks } : {}),
    ...(o.task !== undefined ? { task: o.task } : {}), ...(o.captions !== undefined ? { captions: o.captions } : {}),
    ...(o.mix !== undefined ? { mix: o.mix } : {}), ...(o.captionShare !== undefined ? { captionShare: o.captionShare } : {}),
    ...(o.readObjects ? { readObjects: true } : {}),
    selectionWeight: o.selectionWeight, ...(o.choiceWeight !== undefined ? { choiceWeight: o.choiceWeight } : {}), boxLoss: o.boxLoss, saveEvery: o.saveEvery, maxSeconds: o.maxMinutes * 60, resume: o.resume, embedPs3: o.embedPs3,
    ...(o.cache ? { cacheRoot: o.cache } : {}), cacheOnly: o.cacheOnly,
    tuneSelection: o.tuneSelection, ...(o.selectionLr !== undefined ? { selectionLr: o.selectionLr } : {}),
    ...(o.tuneTrunk !== undefined ? { tuneTrunk: o.tuneTrunk } : {}), ...(o.trunkLr !== undefined ? { trunkLr: o.trunkLr } : {}),
    // TensorFlow.js's WASM engine runs on one core: one thread per core shares each step
    threads: o.threads ?? availableParallelism(),
    ...(o.init !== undefined ? { init: { dir: o.init, method: o.initMethod ?? o.method } } : {}),
  };
  let cacheBar: Progress | undefined;
  let bar: Progress | undefined;
  let started = performance.now();
  const budget = Math.round(o.maxMinutes * 60);
  const result = await trainVilaHd(options, {
    onCache: (done, total, task) => {
      cacheBar ??= progressBar(total, `PS3 tokens of ${total} training scenes${o.task === 'mixed' ? ` (${task})` : ''}`);
      cacheBar.update(done);
      if (done === total) {
        cacheBar.stop();
        cacheBar = undefined;
      }
    },
    onStart: ({ startStep, questions, captions, glyphs, trainable, checkpoint }) => {
      const samples = [questions ? `${questions} questions` : '', captions ? `${captions} captions` : '', glyphs ? `${glyphs} ${o.readObjects ? 'labels, signs and objects' : 'labels and signs'} to read` : ''].filter(Boolean).join(' and ');
      process.stderr.write(`training VILA-HD (${o.method}) -> ${o.out} from step ${startStep} to ${o.steps}: ${samples}, ${trainable} trainable parameters${checkpoint ? `, from ${checkpoint}` : ''}${o.init && startStep === 0 ? `, initialised from ${o.init} (${o.initMethod ?? o.method})` : ''}\n`);
      bar = budget > 0 ? progressBar(budget, 'train-mllm (s of budget)', 'step {step} | loss {loss} | {sps} samples/s') : progressBar(o.steps, 'train-mllm', 'loss {loss} | {sps} samples/s');
      started = performance.now();
      bar.update(budget > 0 ? 0 : startStep, { step: String(startStep), loss: '-', sps: '-' });
    },
    onStep: (m) => {
      const fields = { step: String(m.step), loss: m.loss.toFixed(4), sps: m.samples_per_s.toFixed(2) };
      bar?.update(budget > 0 ? Math.min(Math.round((performance.now() - started) / 1000), budget) : m.step, fields);
    },
  });
  bar?.stop();
  if (result.checkpoint === null) process.stdout.write(`cached the tokens of ${o.images} training scenes for ${o.method}\n`);
  else process.stdout.write(`trained ${o.method} to step ${result.step}; checkpoint ${result.checkpoint}\n`);
  return 0;
}
