/**
 * `trainVilaHd`: one method's LM + projector (+ prompt head for ps3) trained on cached PS3 tokens
 * of synthetic 4KPro-lite-style questions, with the pre-training trainer's guarantees: AdamW,
 * warm-up + cosine, clipping, atomic checkpoints in `OUT/checkpoint/` (a VILA-HD folder plus
 * `optimizer.safetensors` and `trainer_state.json`), `OUT/metrics.jsonl` (one line per step,
 * with the method), a time budget, and kill-and-resume on the same loss curve (the question order
 * is a function of the seed and the sample's index).
 *
 * PS3 stays frozen: its tokens are then fixed functions of the image (and, for the looks, of the
 * evidence box), so they are computed once per image and cached (trainData.ts), and a step costs
 * only the LM. The prompt head still learns where to look through the selection loss, whose
 * probabilities are recomputed from cached inputs with PS3's weights held constant. Two options
 * tune parts of PS3 all the same: `tuneSelection` its selection modules, `tuneTrunk` its last
 * blocks, whose entering hidden states are then what the cache holds.
 *
 * Several methods live in one folder: training another method on the same `--out` adds its
 * weights and leaves the others' (and their optimizer state) as they were.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tensor/engine.js';
import { readSafetensors, writeSafetensors, type NamedArray } from '../io/safetensors.js';
import { UserError } from '../errors.js';
import { Rng } from '../rng.js';
import { loadModel, type PS3Model } from '../model/load.js';
import type { PS3Config } from '../io/config.js';
import { Weights } from '../model/weights.js';
import { AdamW, clipGradients, DEFAULT_ADAMW } from '../train/optimizer.js';
import { learningRate } from '../train/schedule.js';
import { CHECKPOINT, findCheckpoint } from '../train/checkpoint.js';
import { ENCODE_METHODS, type EncodeMethod } from '../model/baselines.js';
import { copyPs3Folder, loadVilaHd, newVilaConfig, ps3PathOf, randomVilaWeights, withMethods, writeVilaFiles } from './model.js';
import { methodParams } from './params.js';
import { ShardedStep } from './gradShards.js';
import type { BoxLossKind } from '../train/loss.js';
import { newLmTokenizer, type LmTokenizer } from './tokenizer.js';
import { buildCache, cacheDir, checkTrainSeed, MIX_TASKS, ps3WeightsHash, SampleReader, TRAIN_TASKS, type CacheSpec, type MixTask, type SampleTask, type TrainQuestion, type TrainTask } from './trainData.js';
import { trainableKeys } from '../train/trainer.js';
import { CONVNET_PREFIX } from '../model/convnet.js';
import { trunkTailKeys } from '../model/vit.js';
import { initFrom, type InitSource } from './init.js';
import { qaLooksByImage, withDecoyLook } from './decoyLooks.js';
import { isTiling, lmConfigOf, parseVilaConfig, readVilaConfig, withContextLength, withResolution, type VilaConfig } from './config.js';

export interface TrainVilaOptions {
  /** the PS3 model folder (required for a new run; a resumed or extended run uses its checkpoint's) */
  readonly ps3?: string;
  readonly out: string;
  readonly method: EncodeMethod;
  /** LM size: `micro`, `tiny` or `small` (config.ts LM_PRESETS) */
  readonly preset: string;
  /** the projector's hidden width in a new folder (default the LM width); a folder keeps its own */
  readonly projectorHidden?: number;
  /**
   * the LM context length of the method trained (default: the preset's in a new folder, the
   * folder's `lm.context_length` when a method joins one); a resumed run keeps its own
   */
  readonly contextLength?: number;
  readonly steps: number;
  readonly batch: number;
  readonly lr: number;
  readonly warmup: number;
  readonly clip: number;
  readonly seed: number;
  /** scenes' dataset seed, below the held-out base */
  readonly dataSeed: number;
  /** training scenes */
  readonly images: number;
  /** ps3: looks per training question */
  readonly looks: number;
  /** ps3: each question's looks drawn from minLooks..looks (default: `looks` for every question) */
  readonly minLooks?: number;
  /** ps3: the share of training questions whose looks take the evidence box first (default 1); the rest look bottom-up */
  readonly evidenceFraction?: number;
  /** ps3: the share of qa samples that read another question's look of the same scene (decoyLooks.ts; default 0) */
  readonly decoyLooks?: number;
  /** anyres/s2: resolution tiled (default the top scale) */
  readonly resolution?: number;
  /** questions per category asked of each training scene (default 1) */
  readonly perCategory?: number;
  /** what each scene is asked (default 'qa'); 'captions' is the alignment stage, 'mixed' both in every batch, 'glyphs' the LM's reading stage (trainData.ts) */
  readonly task?: TrainTask;
  /** captions and mixed tasks: captions asked of each scene (default 4) */
  readonly captions?: number;
  /**
   * mixed task: what joins the questions in every batch (default 'captions'); 'glyphs' (ps3) the
   * LM's reading stage, so that reading labels and signs from a block is not unlearned while the
   * questions teach reading them among a whole look's tokens
   */
  readonly mix?: MixTask;
  /** mixed task: the share of each batch that writes captions or reads glyphs, as `mix` says (default 0.5; the rest answer questions) */
  readonly captionShare?: number;
  /** glyphs task (or mix glyphs): also ask the colour and shape of each labelled or tiny shape, over its own tokens (trainData.ts `objectBlocks`) */
  readonly readObjects?: boolean;
  readonly selectionWeight: number;
  /** weight of the choice term (objective.ts: the softmax over the options' log-likelihoods; default 0, off) */
  readonly choiceWeight?: number;
  /** ps3: the selection loss's form: the pre-training BCE (default) or its balanced form (src/train/loss.ts) */
  readonly boxLoss?: BoxLossKind;
  readonly saveEvery: number;
  /** stop (after a whole step, with a checkpoint) once this many seconds have passed; 0 = none */
  readonly maxSeconds: number;
  readonly resume: boolean;
  /** keep a copy of the PS3 folder inside the VILA-HD folder instead of a relative path */
  readonly embedPs3: boolean;
  /** where the PS3 token cache lives (default OUT/cache) */
  readonly cacheRoot?: string;
  /**
   * make the run's token caches and stop, writing nothing in `out` but its default cache: started beside the run with
   * the same options, a builder that shares the caches' images with it (cacheClaims.ts)
   */
  readonly cacheOnly?: boolean;
  /**
   * ps3: also train PS3's selection modules (selection features' projection, high-res prompt
   * projection, ConvNeXt) with the selection loss; the tuned PS3 is kept inside the folder.
   * `true` or 'all': every selection module; 'projections': the two projections only, the
   * ConvNeXt's features then come from the cache (a step costs matmuls, not the ConvNeXt's gradient)
   */
  readonly tuneSelection?: boolean | TuneSelection;
  /** learning rate of PS3's selection modules (default --lr) */
  readonly selectionLr?: number;
  /**
   * ps3 (qa task, one look a question) or lowres: also train the last this many blocks of PS3's
   * trunk (and its final norm) with the LM's loss and the selection loss; the cache then holds
   * the hidden states entering the first of them (trainData.ts `trunkFrom`), and the tuned PS3 is
   * kept inside the folder
   */
  readonly tuneTrunk?: number;
  /** learning rate of PS3's tuned blocks (default --lr) */
  readonly trunkLr?: number;
  /** threads that share each step's batch (gradShards.ts; default 1) */
  readonly threads?: number;
  /** a new run (or a method joining a folder) starts from this folder's trained weights (init.ts) */
  readonly init?: InitSource;
}

export interface VilaStepMetrics {
  method: EncodeMethod;
  step: number;
  loss: number;
  /** the mean answer loss of the batch's questions (of its captions in the captions task) */
  answer_loss: number;
  /** mixed task: the mean loss of the batch's samples of the mixed-in task (captions, or glyphs with `mix`) */
  caption_loss: number | null;
  selection_loss: number | null;
  /** with a choice weight: the mean choice term of the batch's questions */
  choice_loss: number | null;
  lr: number;
  grad_norm: number;
  samples_per_s: number;
  seconds: number;
}

export interface TrainVilaEvents {
  /** each task's cache in turn (a mixed run makes two) */
  onCache?(done: number, total: number, task: SampleTask): void;
  /** `questions` and `captions`: the samples of each task the run draws from */
  onStart?(info: { startStep: number; questions: number; captions: number; glyphs: number; trainable: number; checkpoint: string | null }): void;
  onStep?(m: VilaStepMetrics): void;
  onSave?(dir: string): void;
}

interface MethodState {
  step: number;
  samplesSeen: number;
  optimizerStep: number;
  options: Record<string, unknown>;
  /** the hash of the PS3 weights the run's token cache was made with (a tuned PS3 changes the folder's) */
  ps3Weights?: string;
}

interface VilaTrainerState extends MethodState {
  readonly method: EncodeMethod;
  readonly methods: Partial<Record<EncodeMethod, MethodState>>;
}

function readState(dir: string): VilaTrainerState {
  const file = path.join(dir, 'trainer_state.json');
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as VilaTrainerState;
    if (!s.methods || typeof s.methods !== 'object') throw new Error('no "methods"');
    return s;
  } catch (e) {
    throw new UserError(`${file}: not a readable VILA-HD trainer state (${(e as Error).message})`);
  }
}

/** Options that fix a run's data and question order: a resume that changed one would leave the run's curve. */
const CURVE_OPTIONS: ReadonlyArray<readonly [keyof TrainVilaOptions, string]> = [
  ['seed', '--seed'], ['dataSeed', '--data-seed'], ['images', '--images'], ['batch', '--batch'], ['looks', '--looks'], ['minLooks', '--min-looks'],
  ['perCategory', '--per-category'], ['evidenceFraction', '--evidence-fraction'], ['decoyLooks', '--decoy-looks'], ['resolution', '--resolution'], ['task', '--task'], ['mix', '--mix'], ['captions', '--captions'], ['captionShare', '--caption-share'],
  ['readObjects', '--read-objects'], ['tuneTrunk', '--tune-trunk'],
];

/** Checks every option before anything expensive. */
export function checkTrainOptions(o: TrainVilaOptions): void {
  if (!(ENCODE_METHODS as readonly string[]).includes(o.method)) throw new UserError(`--method must be one of ${ENCODE_METHODS.join(', ')}, got "${o.method}"`);
  const positive: Array<[string, number]> = [['steps', o.steps], ['batch', o.batch], ['images', o.images], ['looks', o.looks], ['save-every', o.saveEvery]];
  for (const [name, v] of positive) if (!Number.isInteger(v) || v < 1) throw new UserError(`--${name} must be a positive integer, got ${v}`);
  if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new UserError(`--warmup must be a non-negative integer, got ${o.warmup}`);
  if (!(o.lr > 0)) throw new UserError(`--lr must be positive, got ${o.lr}`);
  if (!(o.clip >= 0)) throw new UserError(`--clip must be non-negative, got ${o.clip}`);
  if (!(o.selectionWeight >= 0)) throw new UserError(`--selection-weight must be non-negative, got ${o.selectionWeight}`);
  if (o.choiceWeight !== undefined && !(o.choiceWeight >= 0)) throw new UserError(`--choice-weight must be non-negative, got ${o.choiceWeight}`);
  if (o.choiceWeight && (o.task === 'captions' || o.task === 'glyphs')) throw new UserError(`--choice-weight scores a question's options, which the ${o.task} task does not have`);
  if (!(o.maxSeconds >= 0)) throw new UserError(`--max-minutes must be non-negative, got ${o.maxSeconds / 60}`);
  if (o.tuneSelection && o.method !== 'ps3') throw new UserError(`--tune-selection trains PS3's selection, which only --method ps3 uses (got --method ${o.method})`);
  if (o.selectionLr !== undefined && !(o.selectionLr > 0)) throw new UserError(`--selection-lr must be positive, got ${o.selectionLr}`);
  if (o.tuneTrunk !== undefined) {
    if (!Number.isInteger(o.tuneTrunk) || o.tuneTrunk < 1) throw new UserError(`--tune-trunk must be a positive integer (blocks), got ${o.tuneTrunk}`);
    if (o.method !== 'ps3' && o.method !== 'lowres') throw new UserError(`--tune-trunk trains PS3's last blocks for --method ps3 or lowres (got --method ${o.method}: its tiles would each need their states cached)`);
    if (o.task === 'captions' || o.task === 'mixed' || o.task === 'glyphs') throw new UserError(`--tune-trunk is for the qa task (--task ${o.task} keeps only a region's tokens of a look)`);
    // a look's tokens attend to each other, and looks never do: the cache holds one look a question
    if (o.method === 'ps3' && (o.looks !== 1 || (o.minLooks ?? 1) !== 1)) throw new UserError(`--tune-trunk runs each training look through PS3's last blocks, one look a question: give --looks 1 (got --looks ${o.looks}${o.minLooks !== undefined ? ` --min-looks ${o.minLooks}` : ''})`);
  }
  if (o.trunkLr !== undefined && !(o.trunkLr > 0)) throw new UserError(`--trunk-lr must be positive, got ${o.trunkLr}`);
  if (o.trunkLr !== undefined && o.tuneTrunk === undefined) throw new UserError('--trunk-lr sets the learning rate of PS3\'s tuned blocks: give --tune-trunk too');
  if (o.minLooks !== undefined && (!Number.isInteger(o.minLooks) || o.minLooks < 1 || o.minLooks > o.looks)) throw new UserError(`--min-looks must be an integer from 1 to --looks (${o.looks}), got ${o.minLooks}`);
  if (o.minLooks !== undefined && o.method !== 'ps3') throw new UserError(`--min-looks sets PS3's training looks, which only --method ps3 has (got --method ${o.method})`);
  if (o.evidenceFraction !== undefined && !(o.evidenceFraction >= 0 && o.evidenceFraction <= 1)) throw new UserError(`--evidence-fraction must be from 0 to 1, got ${o.evidenceFraction}`);
  if (o.evidenceFraction !== undefined && o.method !== 'ps3') throw new UserError(`--evidence-fraction sets how PS3's training looks are aimed, which only --method ps3 has (got --method ${o.method})`);
  if (o.decoyLooks !== undefined && !(o.decoyLooks >= 0 && o.decoyLooks <= 1)) throw new UserError(`--decoy-looks must be from 0 to 1, got ${o.decoyLooks}`);
  if (o.decoyLooks !== undefined && o.method !== 'ps3') throw new UserError(`--decoy-looks swaps PS3's looks between questions, which only --method ps3 has (got --method ${o.method})`);
  if (o.perCategory !== undefined && (!Number.isInteger(o.perCategory) || o.perCategory < 1 || o.perCategory > 16)) throw new UserError(`--per-category must be an integer from 1 to 16, got ${o.perCategory}`);
  if (o.task !== undefined && !TRAIN_TASKS.includes(o.task)) throw new UserError(`--task must be one of ${TRAIN_TASKS.join(', ')}, got "${String(o.task)}"`);
  const captions = o.task === 'captions';
  const mixed = o.task === 'mixed';
  if (o.task === 'glyphs') {
    if (o.method !== 'ps3') throw new UserError(`--task glyphs reads a label's block of a look, which only --method ps3 has (got --method ${o.method})`);
    const given: Array<[string, unknown]> = [['--per-category', o.perCategory], ['--evidence-fraction', o.evidenceFraction], ['--decoy-looks', o.decoyLooks], ['--min-looks', o.minLooks], ['--tune-selection', o.tuneSelection || undefined]];
    const extra = given.find(([, v]) => v !== undefined);
    if (extra) throw new UserError(`${extra[0]} is for the qa task; --task glyphs asks each scene's one-character labels and signs, one look a scene forced onto them`);
  }
  if (o.mix !== undefined && !MIX_TASKS.includes(o.mix)) throw new UserError(`--mix must be one of ${MIX_TASKS.join(', ')}, got "${String(o.mix)}"`);
  if (o.mix !== undefined && !mixed) throw new UserError('--mix says what joins the questions in every batch: give --task mixed too');
  if (o.readObjects && o.task !== 'glyphs' && o.mix !== 'glyphs') throw new UserError('--read-objects adds samples to the reading stage: give --task glyphs, or --task mixed --mix glyphs, too');
  if (o.mix === 'glyphs' && o.method !== 'ps3') throw new UserError(`--mix glyphs reads a label's block of a look, which only --method ps3 has (got --method ${o.method})`);
  if (o.captions !== undefined && !captions && !(mixed && (o.mix ?? 'captions') === 'captions')) throw new UserError('--captions sets how many captions a scene is asked: give --task captions or --task mixed (with captions mixed in) too');
  if (o.captionShare !== undefined && !mixed) throw new UserError('--caption-share sets how much of each batch writes captions or reads glyphs: give --task mixed too');
  if (o.captionShare !== undefined && !(o.captionShare > 0 && o.captionShare < 1)) throw new UserError(`--caption-share must be between 0 and 1 (exclusive), got ${o.captionShare}`);
  const split = mixed && o.batch >= 1 ? taskSplit(o.batch, o.captionShare) : null;
  if (split && (split.captions < 1 || split.questions < 1)) {
    throw new UserError(`--batch ${o.batch} with --caption-share ${o.captionShare ?? DEFAULT_CAPTION_SHARE} leaves one task no sample in a batch: give a larger --batch or another share`);
  }
  if (mixed && o.tuneSelection) throw new UserError('--tune-selection is for the qa task (the selection loss\'s questions) alone, not --task mixed');
  if (o.captions !== undefined && (!Number.isInteger(o.captions) || o.captions < 1 || o.captions > 32)) throw new UserError(`--captions must be an integer from 1 to 32, got ${o.captions}`);
  if (captions && o.perCategory !== undefined) throw new UserError('--per-category sets the questions of the qa task; the captions task asks --captions per scene');
  if (captions && o.evidenceFraction !== undefined) throw new UserError('--evidence-fraction aims the looks of the qa task; a caption\'s look is always at its region');
  if (captions && o.decoyLooks !== undefined) throw new UserError('--decoy-looks swaps the looks of the qa task\'s questions; give --task qa or mixed');
  if (captions && o.tuneSelection) throw new UserError('--tune-selection learns from the selection loss, which the captions task does not have');
  if (o.contextLength !== undefined && (!Number.isInteger(o.contextLength) || o.contextLength < 8)) throw new UserError(`--context must be an integer >= 8, got ${o.contextLength}`);
  if (o.projectorHidden !== undefined && (!Number.isInteger(o.projectorHidden) || o.projectorHidden < 1)) throw new UserError(`--projector-hidden must be a positive integer, got ${o.projectorHidden}`);
  if (o.threads !== undefined && (!Number.isInteger(o.threads) || o.threads < 1)) throw new UserError(`--threads must be a positive integer, got ${o.threads}`);
  if (o.init && o.resume) throw new UserError('--init starts a new run from another folder\'s weights; a resumed run continues from its own checkpoint (leave --init out)');
  checkTrainSeed(o.dataSeed);
}

export const DEFAULT_CAPTION_SHARE = 0.5;

/** A mixed batch's samples of each task: captions round(batch x share), questions the rest. */
export function taskSplit(batch: number, share = DEFAULT_CAPTION_SHARE): { questions: number; captions: number } {
  const captions = Math.round(batch * share);
  return { questions: batch - captions, captions };
}

/** Which of PS3's selection modules a run tunes. */
export type TuneSelection = 'all' | 'projections';

/** How PS3's weights are named beside VILA-HD's in the optimizer state. */
const PS3_PREFIX = 'ps3.';

/**
 * A PS3 folder whose `keys` take their values from `weights` (the tuned selection), the rest
 * copied from `from`; float32, so a resumed run continues from exactly these values.
 */
async function writeTunedPs3(from: string, to: string, weights: Weights, keys: readonly string[]): Promise<void> {
  copyPs3Folder(from, to);
  const arrays = readSafetensors(path.join(from, 'model.safetensors'));
  for (const k of keys) {
    const t = weights.get(k);
    arrays.set(k, { shape: t.shape, data: (await t.data()) as Float32Array });
  }
  writeSafetensors(path.join(to, 'model.safetensors'), arrays, { format: 'pt' });
}

/** A method's first weights: random (seeded), or the trained ones `--init` names. */
function newMethodWeights(o: TrainVilaOptions, config: VilaConfig, ps3: PS3Config): Map<string, tf.Tensor> {
  const fresh = new Map(randomVilaWeights(config, ps3, [o.method], o.seed).entries());
  if (o.init) initFrom(o.init, o.method, config, ps3, fresh);
  return fresh;
}

/** The question of sample `k`: each epoch a fresh permutation of all questions, a function of the seed and the epoch. */
export function questionAt(questions: readonly TrainQuestion[], seed: number, k: number, memo: { epoch: number; order: number[] }): TrainQuestion {
  const epoch = Math.floor(k / questions.length);
  if (memo.epoch !== epoch) {
    memo.epoch = epoch;
    memo.order = new Rng((Math.imul(seed ^ 0x2545f491, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0).shuffle(questions.map((_, i) => i));
  }
  return questions[memo.order[k % questions.length]!]!;
}

/** On resume, keep the metrics of other methods and this method's up to its checkpoint. */
function truncateMetrics(file: string, method: EncodeMethod, step: number): void {
  if (!fs.existsSync(file)) return;
  const kept = fs.readFileSync(file, 'utf8').split('\n').filter((line) => {
    if (!line.trim()) return false;
    try {
      const m = JSON.parse(line) as { method: string; step: number };
      return m.method !== method || m.step <= step;
    } catch {
      return false;
    }
  });
  fs.writeFileSync(file, kept.length ? `${kept.join('\n')}\n` : '');
}

/** `checkpoint`: null for a `cacheOnly` run */
export interface TrainVilaResult {
  step: number;
  checkpoint: string | null;
}

export async function trainVilaHd(o: TrainVilaOptions, events: TrainVilaEvents = {}): Promise<TrainVilaResult> {
  checkTrainOptions(o);
  const previous = findCheckpoint(o.out);
  const checkpointDir = path.join(o.out, CHECKPOINT);
  let config: VilaConfig;
  let ps3: PS3Model;
  let ps3Dir: string;
  let weights: Weights;
  let tokenizer: LmTokenizer;
  const optimizer = new AdamW(DEFAULT_ADAMW);
  /** the optimizer of PS3's tuned weights (selection modules, trunk blocks); its state is saved as `m/ps3.vision_model...` */
  const ps3Optimizer = new AdamW(DEFAULT_ADAMW);
  let tune: TuneSelection | null = o.tuneSelection === true ? 'all' : o.tuneSelection || null;
  /** other methods' optimizer state, written back untouched */
  let otherOptimizer = new Map<string, NamedArray>();
  let state: MethodState = { step: 0, samplesSeen: 0, optimizerStep: 0, options: { ...o } };
  let methods: VilaTrainerState['methods'] = {};
  if (previous) {
    const s = readState(previous);
    methods = s.methods;
    const own = s.methods[o.method];
    if (own && o.cacheOnly) throw new UserError(`--cache-only: ${o.out} already holds a ${o.method} run, and a run's caches are made before its first step`);
    if (own && !o.resume) throw new UserError(`${o.out} already holds a ${o.method} run: pass --resume to continue it, or choose another --out`);
    if (!own && o.resume) throw new UserError(`--resume: ${o.out} holds no ${o.method} run (it has ${Object.keys(s.methods).join(', ') || 'none'})`);
    // a method's context shapes its weights: it is the run's, set when the method joined the folder
    const onDisk = readVilaConfig(path.join(previous, 'config.json'));
    if (o.contextLength !== undefined && onDisk.methods.includes(o.method)) {
      const theirs = lmConfigOf(onDisk, o.method).contextLength;
      if (theirs !== o.contextLength) throw new UserError(`--context ${o.contextLength}: the ${o.method} LM in ${previous} has context ${theirs} (give --context ${theirs} or leave it out)`);
    }
    // every method of a folder has the projector shape its config gives
    if (o.projectorHidden !== undefined && o.projectorHidden !== onDisk.projectorHidden) {
      throw new UserError(`--projector-hidden ${o.projectorHidden}: the folder ${previous} has projector.hidden ${onDisk.projectorHidden} (give ${onDisk.projectorHidden} or leave it out)`);
    }
    const loaded = loadVilaHd(previous);
    ps3 = loaded.ps3;
    ps3Dir = ps3PathOf(previous, loaded.config);
    tokenizer = loaded.tokenizer;
    config = loaded.config;
    const all = new Map<string, tf.Tensor>([...loaded.weights.entries()]);
    if (!config.methods.includes(o.method)) {
      config = withMethods(config, [...config.methods, o.method]);
      if (o.contextLength !== undefined) config = withContextLength(config, o.method, o.contextLength);
      for (const [k, t] of newMethodWeights(o, config, ps3.config)) all.set(k, t);
    }
    weights = new Weights(all);
    const opt = readSafetensors(path.join(previous, 'optimizer.safetensors'));
    const mine = new Map<string, tf.Tensor>();
    for (const [k, a] of opt) {
      if (k.slice(2).startsWith(`${o.method}.`)) mine.set(k, tf.tensor(a.data, [...a.shape]));
      else otherOptimizer.set(k, a);
    }
    const selectionState = new Map<string, tf.Tensor>();
    for (const [k, t] of [...mine]) {
      if (!k.slice(2).startsWith(`${PS3_PREFIX}vision_model.`)) continue;
      selectionState.set(`${k.slice(0, 2)}${k.slice(2 + PS3_PREFIX.length)}`, t);
      mine.delete(k);
    }
    if (own) {
      const changed = CURVE_OPTIONS.find(([k]) => (own.options[k] ?? null) !== (o[k] ?? null));
      if (changed) {
        const [k, flag] = changed;
        throw new UserError(`--resume: this ${o.method} run was made with ${flag} ${String(own.options[k] ?? '(not given)')}, got ${String(o[k] ?? '(not given)')}: a resumed run keeps its data and question order (give the run's value, or start a new run with --init)`);
      }
      // a run that tuned the selection goes on tuning it
      // (as it did: the modules it tunes are the run's, like its schedule)
      const before = own.options['tuneSelection'];
      tune = before === true ? 'all' : before === 'all' || before === 'projections' ? before : tune;
      state = { ...own, options: { ...o, tuneSelection: tune } };
      optimizer.load(mine, own.optimizerStep);
      ps3Optimizer.load(selectionState, own.optimizerStep);
    } else tf.dispose([...mine.values(), ...selectionState.values()]);
  } else {
    if (o.resume) throw new UserError(`--resume: no checkpoint in ${o.out}`);
    if (!o.ps3) throw new UserError('give --ps3 DIR (the PS3 model VILA-HD stands on) for a new run');
    ps3Dir = path.resolve(o.ps3);
    ps3 = loadModel(ps3Dir, 'vision');
    const ps3Model = o.embedPs3 || tune || o.tuneTrunk ? 'ps3' : path.relative(path.resolve(checkpointDir), ps3Dir) || '.';
    config = newVilaConfig({
      preset: o.preset, methods: [o.method], ps3Model, seed: o.seed, selectionWeight: o.selectionWeight,
      ...(o.contextLength !== undefined ? { contextLength: o.contextLength } : {}), ...(o.projectorHidden !== undefined ? { projectorHidden: o.projectorHidden } : {}),
    });
    weights = new Weights(newMethodWeights(o, config, ps3.config));
    tokenizer = newLmTokenizer();
  }
  const S = ps3.config.vision.scales[ps3.config.vision.scales.length - 1]!;
  if (o.resolution !== undefined && (!Number.isInteger(o.resolution) || o.resolution < ps3.config.vision.scales[0]! || o.resolution > S)) {
    throw new UserError(`--resolution must be an integer from ${ps3.config.vision.scales[0]} to ${S}, got ${o.resolution}`);
  }
  // a tiling method's LM reads tiles of one resolution: answering defaults to it
  if (isTiling(o.method) && config.resolutions[o.method] === undefined) config = withResolution(config, o.method, o.resolution ?? S);
  const others = config.methods.filter((m) => m !== o.method);
  if (o.tuneTrunk !== undefined && others.length) throw new UserError(`--tune-trunk changes the tokens every method of the folder reads, and ${o.out} holds ${others.join(', ')} trained on the PS3 as it is: train into another --out`);
  const trunkCfg = ps3.config.vision.trunk;
  if (o.tuneTrunk !== undefined && o.tuneTrunk >= trunkCfg.depth) throw new UserError(`--tune-trunk ${o.tuneTrunk}: PS3's trunk has ${trunkCfg.depth} blocks, and the cache holds the states entering the first tuned one (give at most ${trunkCfg.depth - 1})`);
  const trunkFrom = o.tuneTrunk !== undefined ? trunkCfg.depth - o.tuneTrunk : null;
  const tunesPs3 = tune !== null || trunkFrom !== null;
  // a tuned PS3 lives in the folder, rewritten at every checkpoint
  if (tunesPs3 && config.ps3Model !== 'ps3') config = parseVilaConfig({ ...config.raw, ps3_model: 'ps3' }, 'VILA-HD config');
  // the captions task has no selection loss, so the prompt head stays as it is
  const captionsTask = o.task === 'captions' || o.task === 'glyphs';
  const mixedTask = o.task === 'mixed';
  const trainable = [...methodParams(o.method, config, ps3.config).keys()].filter((k) => !captionsTask || !k.startsWith(`${o.method}.prompt_head.`));
  const selectionKeys = tune ? trainableKeys(ps3.weights.keys(), 'all-but-selection').filter((k) => tune === 'all' || !k.startsWith(CONVNET_PREFIX)) : [];
  const trunkKeys = new Set(trunkFrom !== null ? trunkTailKeys(ps3.weights, trunkCfg, trunkFrom) : []);
  const ps3Trainable = [...selectionKeys, ...trunkKeys];
  const cacheRoot = o.cacheRoot ?? path.join(o.out, 'cache');
  const common = { method: o.method, seed: o.dataSeed, images: o.images, ...(o.resolution !== undefined ? { resolution: o.resolution } : {}) };
  // each task's cache is keyed as a run of that task alone makes it, so the runs share caches
  const specs: Partial<Record<SampleTask, CacheSpec>> = {};
  if (o.task !== 'captions' && o.task !== 'glyphs') specs.qa = { ...common, looks: o.looks, ...(o.minLooks !== undefined ? { minLooks: o.minLooks } : {}), ...(o.perCategory !== undefined ? { perCategory: o.perCategory } : {}), ...(o.evidenceFraction !== undefined ? { evidenceFraction: o.evidenceFraction } : {}), convInput: tune === 'all', ...(trunkFrom !== null ? { trunkFrom } : {}) };
  // a mixed run's captions look once at their region, as the captions task's default does
  const captionLooks = o.task === 'captions' ? { looks: o.looks, ...(o.minLooks !== undefined ? { minLooks: o.minLooks } : {}) } : { looks: 1 };
  const mixIn = mixedTask ? (o.mix ?? 'captions') : null;
  if (o.task === 'captions' || mixIn === 'captions') specs.captions = { ...common, ...captionLooks, task: 'captions', ...(o.captions !== undefined ? { captions: o.captions } : {}) };
  if (o.task === 'glyphs' || mixIn === 'glyphs') specs.glyphs = { ...common, looks: 1, task: 'glyphs', ...(o.readObjects ? { objects: true } : {}) };
  // the tokens stay those of the PS3 the run started with: its trunk is frozen, and what a tuned
  // selection would change (the bottom-up rest of a training look) must not move under a resume
  state.ps3Weights ??= ps3WeightsHash(ps3Dir);
  const dirs: Partial<Record<SampleTask, string>> = {};
  const pools: Partial<Record<SampleTask, TrainQuestion[]>> = {};
  for (const [task, spec] of Object.entries(specs) as Array<[SampleTask, CacheSpec]>) {
    dirs[task] = cacheDir(cacheRoot, ps3Dir, spec, state.ps3Weights);
    pools[task] = await buildCache(ps3, spec, dirs[task], (done, total) => events.onCache?.(done, total, task));
  }
  if (o.cacheOnly) {
    weights.dispose();
    ps3.weights.dispose();
    return { step: state.step, checkpoint: null };
  }
  const reader = new SampleReader(dirs, tune === 'all');
  const questions = [...(pools.qa ?? []), ...(pools.captions ?? []), ...(pools.glyphs ?? [])];
  const qaLooks = qaLooksByImage(pools.qa ?? []);
  /** sample k's question, a decoy with --decoy-looks */
  const drawn = (q: TrainQuestion, k: number): TrainQuestion => (o.decoyLooks ? withDecoyLook(q, qaLooks, o.seed, k, o.decoyLooks) : q);

  fs.mkdirSync(o.out, { recursive: true });
  const metricsFile = path.join(o.out, 'metrics.jsonl');
  if (previous) truncateMetrics(metricsFile, o.method, state.step);
  else fs.writeFileSync(metricsFile, '');
  const trainableCount = trainable.reduce((a, k) => a + weights.get(k).size, 0) + ps3Trainable.reduce((a, k) => a + ps3.weights.get(k).size, 0);
  events.onStart?.({ startStep: state.step, questions: pools.qa?.length ?? 0, captions: pools.captions?.length ?? 0, glyphs: pools.glyphs?.length ?? 0, trainable: trainableCount, checkpoint: previous });

  const save = async (): Promise<string> => {
    fs.mkdirSync(o.out, { recursive: true });
    const incoming = path.join(o.out, '.checkpoint-incoming');
    fs.rmSync(incoming, { recursive: true, force: true });
    fs.mkdirSync(incoming);
    await writeVilaFiles(incoming, config, weights.entries());
    const opt = new Map(otherOptimizer);
    for (const [k, t] of optimizer.state()) opt.set(k, { shape: t.shape, data: (await t.data()) as Float32Array });
    for (const [k, t] of ps3Optimizer.state()) opt.set(`${k.slice(0, 2)}${PS3_PREFIX}${k.slice(2)}`, { shape: t.shape, data: (await t.data()) as Float32Array });
    writeSafetensors(path.join(incoming, 'optimizer.safetensors'), opt);
    if (tunesPs3) await writeTunedPs3(ps3Dir, path.join(incoming, 'ps3'), ps3.weights, ps3Trainable);
    else if (config.ps3Model === 'ps3') copyPs3Folder(ps3Dir, path.join(incoming, 'ps3'));
    state.optimizerStep = optimizer.step;
    methods = { ...methods, [o.method]: { ...state } };
    const full: VilaTrainerState = { ...state, method: o.method, methods };
    fs.writeFileSync(path.join(incoming, 'trainer_state.json'), `${JSON.stringify(full, null, 2)}\n`);
    const outgoing = path.join(o.out, '.checkpoint-outgoing');
    fs.rmSync(outgoing, { recursive: true, force: true });
    if (fs.existsSync(checkpointDir)) fs.renameSync(checkpointDir, outgoing);
    fs.renameSync(incoming, checkpointDir);
    fs.rmSync(outgoing, { recursive: true, force: true });
    if (config.ps3Model === 'ps3') ps3Dir = path.join(checkpointDir, 'ps3');
    events.onSave?.(checkpointDir);
    return checkpointDir;
  };

  const threads = Math.min(o.threads ?? 1, o.batch);
  const sharded = await ShardedStep.start(
    { method: o.method, lm: lmConfigOf(config, o.method), ps3, ps3Dir, tokenizer, reader, convInput: tune === 'all', trainable, ps3Trainable, selectionWeight: o.selectionWeight, choiceWeight: o.choiceWeight ?? 0, boxLoss: o.boxLoss ?? 'bce', trunkFrom },
    threads,
    weights,
  );
  const started = performance.now();
  const memo = { epoch: -1, order: [] as number[] };
  const mixMemo = { epoch: -1, order: [] as number[] };
  const split = mixedTask ? taskSplit(o.batch, o.captionShare) : null;
  // a batch's terms are sums over its samples divided by the batch: in a mixed batch the
  // questions' terms are reported per question
  const perQuestion = (term: number): number => (split ? (term * o.batch) / split.questions : term);
  let checkpoint = previous ?? '';
  try {
    while (state.step < o.steps) {
      const t0 = performance.now();
      const lr = learningRate(state.step, { lr: o.lr, warmup: o.warmup, steps: o.steps });
      const batch: TrainQuestion[] = [];
      if (split) {
        // each task's samples in its own order; alternated so that every shard holds both
        const qs = Array.from({ length: split.questions }, (_, i) => {
          const k = state.step * split.questions + i;
          return drawn(questionAt(pools.qa!, o.seed, k, memo), k);
        });
        const cs = Array.from({ length: split.captions }, (_, i) => questionAt(pools[mixIn!]!, o.seed ^ 0x63617074, state.step * split.captions + i, mixMemo));
        for (let i = 0; batch.length < o.batch; i++) batch.push(...[qs[i], cs[i]].filter((q): q is TrainQuestion => q !== undefined));
      } else for (let i = 0; i < o.batch; i++) batch.push(drawn(questionAt(questions, o.seed, state.samplesSeen + i, memo), state.samplesSeen + i));
      state.samplesSeen += o.batch;
      const r = await sharded.run(weights, batch);
      // one clipping over both parts; then each part's own step
      const all = new Map([...r.grads, ...[...r.ps3Grads].map(([k, g]): [string, tf.Tensor] => [`${PS3_PREFIX}${k}`, g])]);
      const gradNorm = clipGradients(all, o.clip);
      optimizer.apply(weights, new Map(trainable.map((k) => [k, all.get(k)!])), lr);
      if (ps3Trainable.length) {
        // each group's rate follows the schedule, scaled by its own peak
        const rate = (k: string): number => lr * ((trunkKeys.has(k) ? (o.trunkLr ?? o.lr) : (o.selectionLr ?? o.lr)) / o.lr);
        ps3Optimizer.apply(ps3.weights, new Map(ps3Trainable.map((k) => [k, all.get(`${PS3_PREFIX}${k}`)!])), rate);
      }
      tf.dispose([...all.values()]);
      state.step += 1;
      const seconds = (performance.now() - t0) / 1000;
      const m: VilaStepMetrics = {
        method: o.method, step: state.step, loss: r.loss,
        answer_loss: split ? perQuestion(r.answer - r.caption) : r.answer,
        caption_loss: split ? (r.caption * o.batch) / split.captions : null,
        selection_loss: o.method === 'ps3' && !captionsTask ? perQuestion(r.selection) : null,
        choice_loss: o.choiceWeight ? perQuestion(r.choice) : null,
        lr, grad_norm: gradNorm, samples_per_s: o.batch / seconds, seconds,
      };
      fs.appendFileSync(metricsFile, `${JSON.stringify(m)}\n`);
      events.onStep?.(m);
      const outOfTime = o.maxSeconds > 0 && (performance.now() - started) / 1000 >= o.maxSeconds;
      const last = state.step >= o.steps || outOfTime;
      if (last || state.step % o.saveEvery === 0) checkpoint = await save();
      if (outOfTime) break;
    }
    if (!checkpoint) checkpoint = await save();
  } finally {
    await sharded.close();
    optimizer.dispose();
    ps3Optimizer.dispose();
    weights.dispose();
    ps3.weights.dispose();
  }
  return { step: state.step, checkpoint };
}

