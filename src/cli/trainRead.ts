/**
 * `ps3 train-read --init DIR --out DIR`: a reading stage for PS3's trunk (train/readingRun.ts);
 * options validated once here, then the run with a progress bar (step, loss, accuracy, ETA).
 */
import { z } from 'zod';
import { num } from './zodArgs.js';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { outputFolder, resolveModelSpec } from './inputs.js';
import { progressBar, type Progress } from './progress.js';
import { parseCurriculum } from '../data/glyphCrops.js';
import { runReading, type ReadingRunOptions } from '../train/readingRun.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';

const integer = (name: string, min: number) => num(name).pipe(z.number().int(`--${name} must be an integer`).min(min, `--${name} must be at least ${min}`));

const schema = z
  .object({
    preset: z.string().optional(),
    init: z.string().optional(),
    out: z.string({ message: '--out DIR is required' }),
    resume: z.boolean().default(false),
    curriculum: z.string(),
    glyphPx: z.string(),
    crop: integer('crop', 1),
    steps: integer('steps', 1),
    batch: integer('batch', 1),
    lr: num('lr').pipe(z.number().positive('--lr must be positive')),
    warmup: integer('warmup', 0),
    clip: num('clip').pipe(z.number().nonnegative('--clip must be >= 0 (0 = off)')),
    weightDecay: num('weight-decay').pipe(z.number().nonnegative('--weight-decay must be >= 0')),
    seed: integer('seed', 0).pipe(z.number().max(HELDOUT_SEED_BASE - 1, `--seed must be below ${HELDOUT_SEED_BASE} (the held-out base)`)),
    saveEvery: integer('save-every', 1),
    maxMinutes: num('max-minutes').pipe(z.number().nonnegative('--max-minutes must be >= 0')),
    evalEvery: integer('eval-every', 0),
    evalCrops: integer('eval-crops', 1),
    evalScenes: integer('eval-scenes', 0),
    keep: z.string().optional(),
    keepWeight: num('keep-weight').pipe(z.number().positive('--keep-weight must be positive')),
    keepScenes: integer('keep-scenes', 1),
    keepBatch: integer('keep-batch', 1),
    contextScenes: integer('context-scenes', 0),
    keepInLook: z.boolean().default(false),
  })
  .refine((o) => o.resume || o.preset !== undefined || o.init !== undefined, { message: 'give --init DIR or --preset NAME (or --resume)' })
  .refine((o) => !(o.resume && (o.preset || o.init)), { message: '--resume continues the run as it was: drop --preset and --init' })
  .refine((o) => !(o.preset && o.init), { message: 'give --init DIR or --preset NAME, not both' })
  .refine((o) => !o.keepInLook || o.keep !== undefined, { message: '--keep-in-look reads the keep term in a look: give --keep DIR too' });

function glyphRange(text: string): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(text.trim());
  if (!m) throw new UserError(`--glyph-px must be MIN-MAX in pixels (e.g. 18-32), got "${text}"`);
  return [Number(m[1]), Number(m[2])];
}

export type TrainReadCliOptions = Record<string, string | boolean | undefined>;

export async function trainReadCommand(raw: TrainReadCliOptions): Promise<number> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new UserError(parsed.error.issues[0]!.message);
  const o = parsed.data;
  outputFolder('--out', o.out);
  const crops = { size: o.crop, glyphPx: glyphRange(o.glyphPx), curriculum: parseCurriculum(o.curriculum) };
  await initEngine({ backend: raw['backend'] as string | undefined });
  const options: ReadingRunOptions = {
    ...(o.preset ? { preset: o.preset } : {}),
    ...(o.init ? { init: (await resolveModelSpec(o.init)).folder } : {}),
    out: o.out,
    resume: o.resume,
    crops,
    steps: o.steps,
    batch: o.batch,
    lr: o.lr,
    warmup: o.warmup,
    clip: o.clip,
    adamw: { betas: [0.9, 0.999], eps: 1e-8, weightDecay: o.weightDecay },
    seed: o.seed,
    saveEvery: o.saveEvery,
    maxSeconds: o.maxMinutes * 60,
    evalEvery: o.evalEvery,
    evalCrops: o.evalCrops,
    evalScenes: o.evalScenes,
    ...(o.keep ? { keep: { from: (await resolveModelSpec(o.keep)).folder, weight: o.keepWeight, scenes: o.keepScenes, batch: o.keepBatch, ...(o.keepInLook ? { inLook: true } : {}) } } : {}),
    ...(o.contextScenes > 0 ? { contextScenes: o.contextScenes } : {}),
  };
  let bar: Progress | undefined;
  let started = performance.now();
  const budget = Math.round(o.maxMinutes * 60);
  let scenesBar: Progress | undefined;
  let keepBar: Progress | undefined;
  let contextBar: Progress | undefined;
  const result = await runReading(options, {
    onScenes: (done, total) => {
      scenesBar ??= progressBar(total, 'held-out scenes');
      scenesBar.update(done);
      if (done === total) scenesBar.stop();
    },
    onKeepScenes: (done, total) => {
      keepBar ??= progressBar(total, 'keep scenes');
      keepBar.update(done);
      if (done === total) keepBar.stop();
    },
    onContextScenes: (done, total) => {
      contextBar ??= progressBar(total, 'context scenes');
      contextBar.update(done);
      if (done === total) contextBar.stop();
    },
    onStart: ({ model, startStep, trainable, headFrom }) => {
      process.stderr.write(`reading stage: ${model.source} -> ${o.out} from step ${startStep} to ${o.steps} (${trainable} trainable weights; head ${headFrom ? `from ${headFrom}` : 'new'}${options.keep ? `; tokens kept near ${options.keep.from}'s${options.keep.inLook ? ' in looks' : ''}, weight ${options.keep.weight}` : ''}${options.contextScenes ? `; crops read as one look beside the low-res tokens of ${options.contextScenes} scenes` : ''})\n`);
      bar = budget > 0 ? progressBar(budget, 'train-read (s of budget)', 'step {step} | loss {loss} | acc {acc}') : progressBar(o.steps, 'train-read', 'loss {loss} | acc {acc}');
      started = performance.now();
      bar.update(budget > 0 ? 0 : startStep, { step: String(startStep), loss: '-', acc: '-' });
    },
    onStep: (m) => {
      const val = Object.entries(m).filter(([k]) => k.startsWith('val_'));
      if (val.length) process.stderr.write(`\nstep ${m.step} held-out accuracy: ${val.map(([k, v]) => `${k.slice(4)} ${(v as number).toFixed(3)}`).join(', ')}\n`);
      const fields = { step: String(m.step), loss: m.keep === undefined ? m.loss.toFixed(3) : `${m.loss.toFixed(3)} keep ${m.keep.toFixed(4)}`, acc: m.accuracy.toFixed(2) };
      bar?.update(budget > 0 ? Math.min(Math.round((performance.now() - started) / 1000), budget) : m.step, fields);
    },
  });
  bar?.stop();
  process.stdout.write(`trained to step ${result.step}; checkpoint ${result.checkpoint}\n`);
  return 0;
}
