/**
 * A whole training run: the model (a named preset with random weights, a checkpoint folder, or
 * the run's own last checkpoint on --resume), the tokenizer, the data stream, the optimizer, and
 * the files a run leaves: `OUT/checkpoint/` and `OUT/metrics.jsonl`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { tf } from '../tensor/engine.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { loadModel, randomModel, type PS3Model } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import { growModel } from '../model/grow.js';
import { inputResizes } from '../model/encoder.js';
import { forcingCapacity } from '../model/selection.js';
import { findCheckpoint, readOptimizerState, readTrainerState, saveCheckpoint } from './checkpoint.js';
import { truncateMetrics } from './metricsFile.js';
import { AdamW } from './optimizer.js';
import { resolveGroups } from './hardNegatives.js';
import { WorkerSampleSource } from './prefetch.js';
import type { SampleWorkerData } from './sampleWorker.js';
import type { SynthStreamSpec } from './synthStream.js';
import { synthVocabulary, writeWordTokenizer } from '../data/wordTokenizer.js';
import { PROMPT_PROJ, trainLoop, type StepMetrics, type TrainLoopOptions } from './trainer.js';

export interface TrainRunOptions extends TrainLoopOptions {
  readonly preset?: string;
  readonly init?: string;
  /** a data folder (images/ and annotations/ shard sets, and tokenizer/), or an endless stream of fresh synthetic scenes */
  readonly data: string | { readonly synth: SynthStreamSpec };
  readonly out: string;
  readonly resume: boolean;
  readonly seed: number;
  readonly shuffleBuffer: number;
  readonly globalCaptionProb: number;
  /**
   * Start the run with this SigLIP logit bias (not on --resume). The reference's -10 suits its
   * batches of thousands, where nearly every pair is a negative; with a handful of samples a batch
   * the fastest way down from -10 is to make every image and text feature alike, and training
   * stalls there. A bias near log(1 / (B - 1)) starts at that point instead.
   */
  readonly logitBias?: number;
  /**
   * Local (box, caption) pairs per image in the contrastive term, the sample's own included
   * (default 1, the reference). The reference pairs each image with one caption, so a batch of B
   * has B - 1 negatives per pair; a batch of 2 at 4K (all 2 cores hold) teaches little. Pooling
   * R boxes of the same look gives B x R pairs for the cost of R captions through the text tower.
   */
  readonly regions?: number;
  /**
   * Weight groups started from random weights drawn with the run's seed, the rest as loaded
   * (not on --resume). A contrastively collapsed model — every caption's feature alike, every
   * box's pooled feature alike (cosine ~1 between any two) — gives the contrastive term no
   * gradient to tell pairs apart; fresh towers start them distinct.
   */
  readonly reinit?: readonly ReinitGroup[];
  /**
   * The hard-negative term: `count` captions a local pair, each one word of a group of `words`
   * away from its own (hardNegatives.ts); the words are resolved to the tokenizer's ids.
   */
  readonly hardNegatives?: { readonly count: number; readonly weight: number; readonly words: readonly (readonly string[])[] };
}

/**
 * `text-tower`: all of `text_model.` but its prompt projection (which the selection reads);
 * `pool-head`: the trunk's attention-pooling head, which makes the contrastive image feature;
 * `prompt-proj`: the text tower's prompt projection alone (a projection that maps every caption
 * to one prompt starts distinct captions apart again, the caption features left as they are).
 */
export const REINIT_GROUPS = ['text-tower', 'pool-head', 'prompt-proj'] as const;
export type ReinitGroup = (typeof REINIT_GROUPS)[number];

/** The keys of the named groups. */
export function reinitKeys(keys: Iterable<string>, groups: readonly ReinitGroup[]): string[] {
  const inGroup: Record<ReinitGroup, (k: string) => boolean> = {
    'text-tower': (k) => k.startsWith('text_model.') && !k.startsWith(PROMPT_PROJ),
    'pool-head': (k) => k.startsWith('vision_model.trunk.attn_pool.'),
    'prompt-proj': (k) => k.startsWith(PROMPT_PROJ),
  };
  return [...keys].filter((k) => groups.some((g) => inGroup[g](k)));
}

function dataPaths(dir: string): { images: string; annotations: string } {
  const images = path.join(dir, 'images');
  const annotations = path.join(dir, 'annotations');
  if (!fs.existsSync(images) || !fs.existsSync(annotations)) {
    throw new UserError(`${dir}: expected a data folder with images/ and annotations/ shard sets (e.g. from "ps3 data synth")`);
  }
  return { images, annotations };
}

/**
 * The model's tokenizer, else the data folder's; a synth stream's model without one gets the
 * word tokenizer `ps3 data synth` would write, in OUT/tokenizer.
 */
async function resolveTokenizerDir(model: string | undefined, data: TrainRunOptions['data'], out: string, contextLength: number): Promise<string> {
  const folder = typeof data === 'string' ? path.join(data, 'tokenizer') : undefined;
  for (const dir of [model, folder]) {
    if (dir && fs.existsSync(path.join(dir, 'tokenizer.json'))) return dir;
  }
  if (folder) throw new UserError(`no tokenizer.json in ${model ? `${model} or ` : ''}${folder}`);
  const dir = path.join(out, 'tokenizer');
  await writeWordTokenizer(dir, synthVocabulary(), { contextLength });
  return dir;
}

/** What --data names, as the sample worker takes it; the same scene stream on --resume. */
function dataSource(data: TrainRunOptions['data'], previous: Record<string, unknown> | null): SampleWorkerData['data'] {
  // a folder may have moved between runs; a scene stream must be the same one
  const before = previous?.['data'];
  const streamBefore = typeof before === 'object' && before !== null;
  if (previous && (typeof data !== 'string' || streamBefore) && JSON.stringify(data) !== JSON.stringify(before)) {
    throw new UserError(`--resume: --data ${describeData(data)} differs from the run's ${streamBefore ? describeData(before as TrainRunOptions['data']) : String(before)}`);
  }
  return typeof data === 'string' ? dataPaths(data) : data;
}

function describeData(data: TrainRunOptions['data']): string {
  return typeof data === 'string' ? data : `synth:${data.synth.seed} (captions ${data.synth.captions.join('-')})`;
}

export interface RunEvents {
  onStart?(info: { model: PS3Model; startStep: number; tokenizerDir: string; trainable: number }): void;
  onStep?(m: StepMetrics): void;
  onSave?(dir: string): void;
  onData?(summary: string): void;
  /** a held-out evaluation of the model as it trains (every `evalEvery` steps); its `val_*` numbers go into metrics.jsonl */
  evaluate?(model: PS3Model, tokenizer: TextTokenizer): Promise<Record<`val_${string}`, number | null>>;
}

export async function runTraining(o: TrainRunOptions, events: RunEvents = {}): Promise<{ step: number; checkpoint: string }> {
  const previous = o.resume ? findCheckpoint(o.out) : null;
  if (o.resume && !previous) throw new UserError(`--resume: no checkpoint in ${o.out}`);
  if (!o.resume && findCheckpoint(o.out)) throw new UserError(`${o.out} already holds a checkpoint: pass --resume to continue it, or choose another --out`);
  const data = dataSource(o.data, previous ? readTrainerState(previous).options : null);
  let model: PS3Model;
  if (previous) model = loadModel(previous);
  else if (o.init && o.preset) {
    // a resolution curriculum or a new selection ConvNeXt: the checkpoint's weights in the preset's shape
    const grown = growModel(loadModel(o.init), presetConfig(o.preset), o.seed);
    model = grown.model;
    const r = grown.report;
    events.onData?.(`grew ${o.init} to ${o.preset}: ${r.copied} weights copied, first chunk of ${r.firstChunk.length}, ${r.zeroed.join(', ') || 'none'} started at zero${r.fresh.length ? `, ${r.fresh.length} of the selection ConvNeXt and its prompt projection drawn afresh (seed ${o.seed})` : ''}`);
  } else if (o.init) model = loadModel(o.init);
  else if (o.preset) model = randomModel(presetConfig(o.preset), o.seed);
  else throw new UserError('give --preset NAME or --init DIR (or --resume)');
  if (o.reinit?.length && !previous) {
    const fresh = randomModel(model.config, o.seed);
    const keys = reinitKeys(model.weights.keys(), o.reinit);
    for (const k of keys) model.weights.replace(k, fresh.weights.get(k).clone());
    fresh.weights.dispose();
    events.onData?.(`${o.reinit.join(', ')} drawn afresh (seed ${o.seed}): ${keys.length} weights`);
  }
  if (o.logitBias !== undefined && !previous) {
    if (!model.weights.has('logit_bias')) throw new UserError('--logit-bias: the model has no logit_bias');
    model.weights.replace('logit_bias', tf.fill([1], o.logitBias));
  }
  const optimizer = new AdamW(o.adamw);
  let state = { step: 0, samplesSeen: 0 };
  if (previous) {
    const s = readTrainerState(previous);
    // the data stream depends on it: a resume with another count would leave the curve
    const before = typeof s.options['regions'] === 'number' ? s.options['regions'] : 1;
    if ((o.regions ?? 1) !== before) throw new UserError(`--resume: --regions ${o.regions ?? 1} differs from the run's ${before} (${previous})`);
    if (o.stopAt !== undefined && o.stopAt <= s.step) throw new UserError(`--stop-at ${o.stopAt}: the run is already at step ${s.step} (${previous})`);
    state = { step: s.step, samplesSeen: s.samplesSeen };
    optimizer.load(readOptimizerState(previous), s.optimizerStep);
  }
  const tokenizerDir = await resolveTokenizerDir(previous ?? o.init, o.data, o.out, model.config.text.contextLength);
  const tokenizer: TextTokenizer = await loadTokenizer(tokenizerDir, { contextLength: model.config.text.contextLength, clean: model.config.text.tokenizerClean, padId: model.config.text.padId });
  const lossWeights = o.hardNegatives ? { ...o.lossWeights, hardNegatives: { count: o.hardNegatives.count, weight: o.hardNegatives.weight, groups: resolveGroups(tokenizer, o.hardNegatives.words) } } : o.lossWeights;
  const S = model.config.vision.scales[model.config.vision.scales.length - 1]!;
  fs.mkdirSync(o.out, { recursive: true });
  const metricsFile = path.join(o.out, 'metrics.jsonl');
  if (!previous) fs.writeFileSync(metricsFile, '');
  else truncateMetrics(metricsFile, state.step);
  // samples are prepared in a worker thread, two ahead, so data work overlaps training; it is
  // closed on every way out of the loop, or it would keep the process alive
  const source = new WorkerSampleSource(
    {
      data,
      seed: o.seed,
      shuffleBuffer: o.shuffleBuffer,
      skip: state.samplesSeen,
      size: S,
      globalCaptionProb: o.globalCaptionProb,
      ...(o.regions ? { regions: o.regions, forcing: forcingCapacity(model.config.vision, S) } : {}),
      ahead: 2,
      resizes: inputResizes(model.config.vision, S, S),
    },
    (key, message) => events.onData?.(`skipped ${key}: ${message}`),
  );
  const runOptions: Record<string, unknown> = { ...o };
  let checkpoint = previous ?? '';
  let final: { step: number; samplesSeen: number };
  try {
    events.onStart?.({ model, startStep: state.step, tokenizerDir, trainable: 0 });
    final = await trainLoop(model, optimizer, source, tokenizer, { ...o, lossWeights }, state, {
      onStep: (m) => {
        fs.appendFileSync(metricsFile, `${JSON.stringify(m)}\n`);
        events.onStep?.(m);
      },
      ...(events.evaluate ? { evaluate: () => events.evaluate!(model, tokenizer) } : {}),
      save: async (s) => {
        checkpoint = await saveCheckpoint(o.out, model, optimizer, { step: s.step, samplesSeen: s.samplesSeen, optimizerStep: optimizer.step, options: runOptions }, tokenizerDir);
        events.onSave?.(checkpoint);
      },
    });
    const read = await source.summary();
    // drawn scenes have nothing to decode
    events.onData?.('synth' in data ? read.summary : `${read.summary}; images that did not decode: ${read.badImages}`);
  } finally {
    await source.close();
  }
  optimizer.dispose();
  model.weights.dispose();
  return { step: final.step, checkpoint };
}
