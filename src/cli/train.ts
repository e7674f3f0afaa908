/**
 * `ps3 train --preset NAME | --init DIR --data DIR --steps N --batch B --out DIR [--resume]`:
 * options validated once here, then the run with a progress bar (step, loss, samples/s, ETA).
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { lossWeights, num } from './zodArgs.js';
import { CONTRAST_WORDS } from '../data/scene/contrastWords.js';
import { initEngine } from '../tensor/engine.js';
import { resolveModelSpec } from './inputs.js';
import { UserError } from '../errors.js';
import { REINIT_GROUPS, runTraining, type TrainRunOptions } from '../train/run.js';
import { progressBar, type Progress } from './progress.js';
import { validate } from '../eval/validation.js';
import { outputFolder } from './inputs.js';
import { captionsOption } from './dataSynth.js';
import { parseSynthData } from '../train/synthStream.js';


const schema = z
  .object({
    preset: z.string().optional(),
    init: z.string().optional(),
    data: z.string({ message: '--data DIR (or synth[:SEED]) is required' }),
    synthCaptions: z.string().optional(),
    out: z.string({ message: '--out DIR is required' }),
    resume: z.boolean().default(false),
    steps: num('steps').pipe(z.number().int('--steps must be an integer').positive('--steps must be positive')),
    batch: num('batch').pipe(z.number().int('--batch must be an integer').positive('--batch must be positive')),
    accum: num('accum').pipe(z.number().int().positive('--accum must be a positive integer')),
    threads: num('threads').pipe(z.number().int('--threads must be an integer').positive('--threads must be positive')).optional(),
    lr: num('lr').pipe(z.number().positive('--lr must be positive')),
    warmup: num('warmup').pipe(z.number().int().nonnegative('--warmup must be a non-negative integer')),
    clip: num('clip').pipe(z.number().nonnegative('--clip must be >= 0 (0 = off)')),
    weightDecay: num('weight-decay').pipe(z.number().nonnegative('--weight-decay must be >= 0')),
    freeze: z.enum(['none', 'text', 'prompts', 'all-but-selection', 'trunk', 'features'], { message: '--freeze must be none, text, prompts, all-but-selection, trunk or features' }),
    seed: num('seed').pipe(z.number().int('--seed must be an integer')),
    saveEvery: num('save-every').pipe(z.number().int().positive('--save-every must be a positive integer')),
    stopAt: num('stop-at').pipe(z.number().int('--stop-at must be an integer').positive('--stop-at must be positive')).optional(),
    maxMinutes: num('max-minutes').pipe(z.number().nonnegative('--max-minutes must be >= 0')),
    shuffleBuffer: num('shuffle-buffer').pipe(z.number().int().positive('--shuffle-buffer must be a positive integer')),
    globalCaptionProb: num('global-caption-prob').pipe(z.number().min(0).max(1, '--global-caption-prob must be in [0, 1]')),
    lossWeights: lossWeights(),
    wordLoss: num('word-loss').pipe(z.number().nonnegative('--word-loss must be >= 0 (0 = off)')),
    tokenWordLoss: num('token-word-loss').pipe(z.number().nonnegative('--token-word-loss must be >= 0 (0 = off)')),
    hardNegatives: num('hard-negatives').pipe(z.number().int('--hard-negatives must be an integer').min(0, '--hard-negatives must be >= 0 (0 = off)').max(16, '--hard-negatives must be at most 16')),
    hardNegativeWeight: num('hard-negative-weight').pipe(z.number().positive('--hard-negative-weight must be positive')),
    boxLoss: z.enum(['bce', 'balanced', 'softmax'], { message: '--box-loss must be bce, balanced or softmax' }),
    logitBias: num('logit-bias').optional(),
    reinit: z
      .string()
      .default('')
      .transform((s) => s.split(',').map((g) => g.trim()).filter(Boolean))
      .pipe(z.array(z.enum(REINIT_GROUPS, { message: `--reinit takes a comma-separated list of ${REINIT_GROUPS.join(', ')}` }))),
    regions: num('regions').pipe(z.number().int('--regions must be an integer').min(1, '--regions must be at least 1 (the sample\'s own box)').max(64, '--regions must be at most 64')),
    regionSelection: z.boolean().default(false),
    evalEvery: num('eval-every').pipe(z.number().int('--eval-every must be an integer').nonnegative('--eval-every must be >= 0 (0 = never)')),
    // retrieval's 7 distractors come from the other scenes' captions (4 to 8 each): 3 scenes at least
    evalScenes: num('eval-scenes').pipe(z.number().int('--eval-scenes must be an integer').min(3, '--eval-scenes must be at least 3 (retrieval draws its distractors from the other scenes)')),
  })
  .refine((o) => o.resume || o.preset !== undefined || o.init !== undefined, { message: 'give --preset NAME or --init DIR (or --resume)' })
  .refine((o) => !(o.resume && o.preset && o.init), { message: '--resume continues the run as it was: drop --preset and --init' })
  .refine((o) => o.stopAt === undefined || o.stopAt <= o.steps, { message: '--stop-at must be at most --steps (the schedule\'s length)' })
  .refine((o) => !o.regionSelection || o.regions > 1, { message: '--region-selection needs other regions to select: give --regions 2 or more' })
  .refine((o) => !o.regionSelection || o.lossWeights.posteriorBox > 0 || o.lossWeights.priorBox > 0, { message: '--region-selection feeds the box terms: give --loss-weights a non-zero box weight' });

export type TrainCliOptions = Record<string, string | boolean | undefined>;

export async function trainCommand(raw: TrainCliOptions): Promise<number> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new UserError(parsed.error.issues[0]!.message);
  const o = parsed.data;
  outputFolder('--out', o.out);
  const synthSeed = parseSynthData(o.data);
  if (synthSeed !== null && existsSync(o.data)) throw new UserError(`--data ${o.data}: a folder here has the synthetic stream's name; give the folder as ./${o.data}`);
  if (synthSeed === null && o.synthCaptions !== undefined) throw new UserError('--synth-captions is for --data synth[:SEED]');
  const data = synthSeed === null ? o.data : { synth: { seed: synthSeed, captions: captionsOption(o.synthCaptions, '--synth-captions') } };
  if (o.seed < 0 || o.seed > 0xffffffff) throw new UserError(`--seed must be an integer from 0 to ${0xffffffff}, got "${o.seed}"`);
  await initEngine({ backend: raw['backend'] as string | undefined });
  const options: TrainRunOptions = {
    ...(o.preset ? { preset: o.preset } : {}),
    // a Hub id is brought into the cache; training reads the snapshot folder
    ...(o.init ? { init: (await resolveModelSpec(o.init)).folder } : {}),
    data,
    out: o.out,
    resume: o.resume,
    steps: o.steps,
    batch: o.batch,
    accum: o.accum,
    // by default a core is left to the data thread, which prepares the next samples meanwhile
    threads: Math.min(o.threads ?? Math.max(1, availableParallelism() - 1), o.batch),
    lr: o.lr,
    warmup: o.warmup,
    clip: o.clip,
    freeze: o.freeze,
    adamw: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: o.weightDecay },
    lossWeights: { ...o.lossWeights, box: o.boxLoss, ...(o.wordLoss > 0 ? { words: o.wordLoss } : {}), ...(o.tokenWordLoss > 0 ? { tokenWords: o.tokenWordLoss } : {}), ...(o.regionSelection ? { regionSelection: true } : {}) },
    seed: o.seed,
    saveEvery: o.saveEvery,
    maxSeconds: o.maxMinutes * 60,
    ...(o.stopAt !== undefined ? { stopAt: o.stopAt } : {}),
    shuffleBuffer: o.shuffleBuffer,
    globalCaptionProb: o.globalCaptionProb,
    evalEvery: o.evalEvery,
    ...(o.logitBias !== undefined ? { logitBias: o.logitBias } : {}),
    ...(o.regions > 1 ? { regions: o.regions } : {}),
    ...(o.reinit.length ? { reinit: o.reinit } : {}),
    ...(o.hardNegatives > 0 ? { hardNegatives: { count: o.hardNegatives, weight: o.hardNegativeWeight, words: CONTRAST_WORDS } } : {}),
  };
  let bar: Progress | undefined;
  let started = performance.now();
  const result = await runTraining(options, {
    onStart: ({ model, startStep }) => {
      process.stderr.write(`training ${model.source} -> ${o.out} from step ${startStep} to ${o.stopAt !== undefined ? `${o.stopAt} (of ${o.steps})` : o.steps}${options.threads! > 1 ? ` on ${options.threads} threads` : ''}\n`);
      // with a time budget the bar counts seconds of it, not steps that will never all run
      bar = o.maxMinutes > 0 ? progressBar(Math.round(o.maxMinutes * 60), 'train (s of budget)', 'step {step} | loss {loss} | {sps} samples/s') : progressBar(o.stopAt ?? o.steps, 'train', 'loss {loss} | {sps} samples/s');
      started = performance.now();
      bar.update(o.maxMinutes > 0 ? 0 : startStep, { step: String(startStep), loss: '-', sps: '-' });
    },
    onStep: (m) => {
      const val = Object.entries(m).filter(([k]) => k.startsWith('val_'));
      if (val.length) process.stderr.write(`\nstep ${m.step} held-out: ${val.map(([k, v]) => `${k.slice(4)} ${typeof v === 'number' ? v.toFixed(3) : '—'}`).join(', ')}\n`);
      const fields = { step: String(m.step), loss: m.loss.toFixed(4), sps: m.samples_per_s.toFixed(2) };
      bar?.update(o.maxMinutes > 0 ? Math.min(Math.round((performance.now() - started) / 1000), Math.round(o.maxMinutes * 60)) : m.step, fields);
    },
    onData: (summary) => process.stderr.write(`data: ${summary}\n`),
    ...(o.evalEvery > 0 ? { evaluate: (model, tokenizer) => validate(model, tokenizer, { scenes: o.evalScenes }) } : {}),
  });
  bar?.stop();
  process.stdout.write(`trained to step ${result.step}; checkpoint ${result.checkpoint}\n`);
  return 0;
}
