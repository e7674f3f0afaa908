/**
 * Local retrieval: for held-out (image, box, caption) triples, rank the true caption among N
 * candidates using only the image (never the box, except for the labelled oracle). Top-1
 * accuracy against chance 1/N.
 *
 * Candidates: the true caption plus N - 1 distractors, by default captions of other images that
 * no region of this image has (see `Distractors`). Deterministic for a seed.
 *
 * Methods (the region must not see the answer):
 *  - `ps3`: every candidate gets its own look — top-down selection from that candidate's prompt,
 *    the chosen high-res tokens MAP-pooled and scored against that candidate's text feature;
 *    the best-scoring candidate wins. Every candidate is treated alike, so the true caption is
 *    no more "seen" than any other; the cost is N encodes per triple.
 *  - `ps3-box` (oracle, knows the box): PS3's pre-training layout — the box as ground-truth
 *    selection map, the rest of one full-budget look chosen bottom-up (prior prompt), the chosen
 *    tokens that overlap the box MAP-pooled; one encode, scored against every candidate. An
 *    upper bound for what the local features can do when the location is given.
 *  - `lowres`, `anyres`, `s2`: one pooled feature per image (src/model/baselines.ts), scored
 *    against every candidate.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tensor/engine.js';
import { decodeImage, normalise, squash, type RgbImage } from '../io/image.js';
import { ShardDataset } from '../io/shards.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { UserError } from '../errors.js';
import { Rng } from '../rng.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { renderScene } from '../data/scene/render.js';
import { sceneRng } from '../data/synth.js';
import { withResizes, type Pixels } from '../model/encoder.js';
import { l2Normalize } from '../model/layers.js';
import type { PS3Model } from '../model/load.js';
import { encodePretrain } from '../model/pretrain.js';
import { textFeatures } from '../model/region.js';
import { boxToGtMap, type LookCount } from '../model/selection.js';
import { encodeWith, engineSurvives, isOutOfMemory, lowResTokenCount, type MethodEncoding } from '../model/baselines.js';
import { argmax } from './qa/answer.js';
import { median } from './qa/evaluate.js';

export const RETRIEVAL_METHODS = ['ps3', 'ps3-box', 'lowres', 'anyres', 's2'] as const;
export type RetrievalMethod = (typeof RETRIEVAL_METHODS)[number];

export type PixelBox = readonly [number, number, number, number];

/** One image of the evaluation: how to get its pixels (at the top scale), and its regions in those pixels. */
export interface RetrievalImage {
  readonly key: string;
  readonly regions: ReadonlyArray<{ readonly box: PixelBox; readonly caption: string; readonly kind?: string }>;
  /** every small object's box, where known (synthetic scenes) */
  readonly objects?: readonly PixelBox[];
  load(): Promise<Pixels>;
}

export interface RetrievalTask {
  readonly image: number;
  readonly region: number;
  /** candidate captions; `truth` indexes the true one */
  readonly candidates: string[];
  readonly truth: number;
}

const MEAN = [0.5, 0.5, 0.5];
const STD = [0.5, 0.5, 0.5];

/** An image squashed to size x size and normalised as the processor does (mean and std 0.5). */
export function toPixels(image: RgbImage, size: number): Pixels {
  const sq = image.width === size && image.height === size ? image : squash(image, size);
  return { data: normalise(sq, MEAN, STD), batch: 1, height: size, width: size };
}

/** Refuses a scene seed in the training range (below the held-out base) unless `force`. */
export function checkHeldOutSeed(seed: number, force = false): void {
  if (seed < HELDOUT_SEED_BASE && !force) throw new UserError(`--seed ${seed} is in the training range [0, ${HELDOUT_SEED_BASE}); held-out data takes seeds from ${HELDOUT_SEED_BASE} (or pass --force)`);
}

/**
 * `count` held-out synthetic scenes of `size` px rendered in memory (seed >= 1e6 unless forced),
 * their pixels squashed to `topScale`. Each scene is rendered again when its pixels are needed.
 */
export function synthRetrievalImages(seed: number, count: number, size: number, topScale: number, force = false): RetrievalImage[] {
  checkHeldOutSeed(seed, force);
  const k = topScale / size;
  return Array.from({ length: count }, (_, i) => {
    const scene = renderScene(sceneRng(seed, i), { width: size, height: size });
    return {
      key: `synth-${seed}-${i}`,
      regions: scene.regions.map((r) => ({ box: [r.box[0] * k, r.box[1] * k, r.box[2] * k, r.box[3] * k] as const, caption: r.caption, kind: r.kind })),
      objects: scene.objects.map((o) => [o.box[0] * k, o.box[1] * k, o.box[2] * k, o.box[3] * k] as const),
      load: async () => {
        const again = renderScene(sceneRng(seed, i), { width: size, height: size });
        return toPixels({ data: again.rgb, width: size, height: size }, topScale);
      },
    };
  });
}

/** The first `count` images of a data folder (images/ and annotations/ shard sets, in shard order), pixels squashed to `topScale`. */
export async function shardRetrievalImages(dir: string, count: number, topScale: number): Promise<{ images: RetrievalImage[]; seed: number | null }> {
  const images = path.join(dir, 'images');
  const annotations = path.join(dir, 'annotations');
  if (!fs.existsSync(images) || !fs.existsSync(annotations)) throw new UserError(`${dir}: expected a data folder with images/ and annotations/ shard sets (e.g. from "ps3 data synth")`);
  let seed: number | null = null;
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { seed?: unknown };
    if (typeof manifest.seed === 'number') seed = manifest.seed;
  } catch {
    // no manifest: not ours, seed unknown
  }
  const data = new ShardDataset({ images, annotations, seed: 0, shuffleBuffer: 0, resample: false, shuffleShards: false });
  const out: RetrievalImage[] = [];
  for await (const raw of data.samples()) {
    if (out.length >= count) break;
    const { text, box } = raw.annotation;
    if (text.length === 0) continue;
    const meta = await decodeImage(raw.image, { name: `${raw.shard}: ${raw.key}` });
    const sx = topScale / meta.width;
    const sy = topScale / meta.height;
    out.push({
      key: raw.key,
      regions: text.map((caption, i) => {
        const [x0, y0, x1, y1] = box[i]!;
        return { caption, box: [x0 * sx, y0 * sy, x1 * sx, y1 * sy] as const };
      }),
      load: async () => toPixels(await decodeImage(raw.image, { name: `${raw.shard}: ${raw.key}` }), topScale),
    });
  }
  if (out.length === 0) throw new UserError(`${dir}: no images with local captions`);
  return { images: out, seed };
}

/**
 * Where a triple's wrong candidates come from. `other`: captions of other images that no region
 * of this image has — the question "which caption is true of this image?" then has one answer,
 * found by looking at the right place. `same`: this image's other regions first — every candidate
 * is then true somewhere in the image, so without the box (the `ps3-box` oracle) no method can
 * tell the asked region from the others; kept for the oracle's upper bound.
 */
export type Distractors = 'other' | 'same';

/**
 * Up to `count` tasks, at most `perImage` per image, each with `candidates` captions: the true one
 * and `candidates - 1` distractors (see `Distractors`), shuffled. Deterministic for a seed.
 */
export function retrievalTasks(images: readonly RetrievalImage[], options: { count: number; candidates: number; perImage?: number; seed?: number; distractors?: Distractors }): RetrievalTask[] {
  const { count, candidates } = options;
  if (!Number.isInteger(candidates) || candidates < 2) throw new UserError(`--candidates must be an integer of at least 2, got ${candidates}`);
  const rng = new Rng(options.seed ?? 0);
  const perImage = options.perImage ?? 2;
  const distractors = options.distractors ?? 'other';
  const tasks: RetrievalTask[] = [];
  for (let i = 0; i < images.length && tasks.length < count; i++) {
    const regions = images[i]!.regions;
    const own = new Set(regions.map((x) => x.caption));
    const order = rng.shuffle(regions.map((_, r) => r)).slice(0, perImage);
    for (const r of order) {
      if (tasks.length >= count) break;
      const truth = regions[r]!.caption;
      const same = rng.shuffle([...own].filter((c) => c !== truth));
      const others = rng.shuffle(images.flatMap((im, j) => (j === i ? [] : im.regions.map((x) => x.caption))).filter((c) => !own.has(c)));
      const pool = [...new Set(distractors === 'other' ? others : [...same, ...others])];
      if (pool.length < candidates - 1) throw new UserError(`only ${pool.length + 1} distinct captions for ${candidates} candidates; use fewer --candidates or more images`);
      const list = rng.shuffle([truth, ...pool.slice(0, candidates - 1)]);
      tasks.push({ image: i, region: r, candidates: list, truth: list.indexOf(truth) });
    }
  }
  return tasks;
}

export interface RetrievalOptions {
  readonly method: RetrievalMethod;
  readonly looks?: LookCount;
  readonly tokens?: number;
  readonly resolution?: number;
  readonly onProgress?: (done: number, total: number, correct: number) => void;
}

export interface RetrievalPrediction {
  readonly image: string;
  readonly caption: string;
  readonly truth: number;
  readonly predicted: number;
  readonly correct: boolean;
  /** 1 = the true caption scored best */
  readonly rank: number;
  readonly tokens: number;
  readonly encodes: number;
  readonly ms: number;
}

export interface RetrievalReport {
  readonly method: RetrievalMethod;
  readonly status: 'ok' | 'out of memory';
  readonly error: string | null;
  /** true when an allocation failed inside the engine (the WASM module is then unusable) */
  readonly aborted: boolean;
  readonly candidates: number;
  readonly triples: number;
  readonly answered: number;
  readonly accuracy: number | null;
  readonly chance: number;
  readonly mean_rank: number | null;
  /** tokens through the trunk per triple (all its encodes) */
  readonly tokens_median: number | null;
  readonly encodes_per_triple: number;
  readonly ms_per_triple_median: number | null;
  readonly predictions: RetrievalPrediction[];
}

/** Box-pooled feature [1, D] of PS3's pre-training layout: the box forced, the prior prompt for the rest. */
async function boxEncoding(model: PS3Model, pixels: Pixels, box: PixelBox): Promise<MethodEncoding> {
  const t0 = performance.now();
  const cfg = model.config.vision;
  const gt = boxToGtMap([box[0], box[1], box[2], box[3]], pixels.height);
  let chosen = 0;
  // the pre-training layout leaves its intermediates to the caller's tidy (it runs inside tf.grad)
  const feature = tf.tidy(() => {
    const prior = tf.reshape(model.weights.get('vision_model.prior_prompt'), [1, cfg.trunk.width]);
    const out = encodePretrain(model.weights, cfg, pixels, prior, gt, [0]);
    chosen = out.selectionMaps.reduce((a, m) => a + m.data.reduce((s, v) => s + v, 0), 0);
    return l2Normalize(out.pooledOutput);
  });
  await feature.data();
  return { feature, tokens: lowResTokenCount(cfg) + chosen, tiles: 0, ms: performance.now() - t0 };
}

function rankOf(scores: readonly number[], truth: number): number {
  return 1 + scores.filter((s, i) => i !== truth && s > scores[truth]!).length;
}

/** Run the tasks with one method. An out-of-memory stops the run and is reported, not thrown. */
export async function evaluateRetrieval(model: PS3Model, tokenizer: TextTokenizer, images: readonly RetrievalImage[], tasks: readonly RetrievalTask[], options: RetrievalOptions): Promise<RetrievalReport> {
  if (tasks.length === 0) throw new UserError('no retrieval tasks (no images with local captions?)');
  const N = tasks[0]!.candidates.length;
  const predictions: RetrievalPrediction[] = [];
  let status: RetrievalReport['status'] = 'ok';
  let error: string | null = null;
  let aborted = false;
  let correct = 0;
  const held: { image: number; pixels: Pixels | null; encoding: MethodEncoding | null; resizeMs: number } = { image: -1, pixels: null, encoding: null, resizeMs: 0 };
  const look = { ...(options.looks !== undefined ? { looks: options.looks } : {}), ...(options.tokens !== undefined ? { tokens: options.tokens } : {}), ...(options.resolution !== undefined ? { resolution: options.resolution } : {}) };
  try {
    for (const task of tasks) {
      if (held.image !== task.image) {
        held.encoding?.feature.dispose();
        held.encoding = null;
        const loaded = await images[task.image]!.load();
        const r0 = performance.now();
        // every candidate's look resizes the same image: make the resizes once, charge them to this triple
        held.pixels = options.method === 'ps3' ? withResizes(model.config.vision, loaded) : loaded;
        held.resizeMs = performance.now() - r0;
        held.image = task.image;
      }
      const pixels = held.pixels!;
      const t0 = performance.now() - held.resizeMs;
      held.resizeMs = 0;
      const { features, prompts } = textFeatures(model, tokenizer.encode(task.candidates), task.candidates.length);
      let scores: number[];
      let tokens = 0;
      let encodes = 0;
      let charged = 0;
      try {
        if (options.method === 'ps3') {
          scores = [];
          for (let c = 0; c < task.candidates.length; c++) {
            const prompt = tf.slice(prompts, [c, 0], [1, -1]);
            const text = tf.slice(features, [c, 0], [1, -1]);
            try {
              const enc = await encodeWith(model, pixels, 'ps3', { ...look, prompt });
              const s = tf.tidy(() => tf.sum(tf.mul(enc.feature, text)));
              scores.push(s.dataSync()[0]!);
              tf.dispose([s, enc.feature]);
              tokens += enc.tokens;
              encodes++;
            } finally {
              tf.dispose([prompt, text]);
            }
          }
        } else {
          let enc: MethodEncoding;
          if (options.method === 'ps3-box') {
            enc = await boxEncoding(model, pixels, images[task.image]!.regions[task.region]!.box);
          } else if (held.encoding) {
            // the image's encode, made for an earlier triple, is charged to this one too
            enc = held.encoding;
            charged = enc.ms;
          } else {
            enc = await encodeWith(model, pixels, options.method, look);
            held.encoding = enc;
          }
          const s = tf.tidy(() => tf.reshape(tf.matMul(features, enc.feature, false, true), [-1]));
          scores = Array.from(s.dataSync());
          s.dispose();
          if (options.method === 'ps3-box') enc.feature.dispose();
          tokens = enc.tokens;
          encodes = 1;
        }
      } finally {
        try {
          tf.dispose([features, prompts]);
        } catch {
          // the engine aborted
        }
      }
      const ms = performance.now() - t0 + charged;
      const predicted = argmax(scores);
      if (predicted === task.truth) correct++;
      predictions.push({
        image: images[task.image]!.key, caption: task.candidates[task.truth]!, truth: task.truth, predicted, correct: predicted === task.truth,
        rank: rankOf(scores, task.truth), tokens, encodes, ms,
      });
      options.onProgress?.(predictions.length, tasks.length, correct);
    }
    held.encoding?.feature.dispose();
  } catch (e) {
    if (!isOutOfMemory(e)) throw e;
    status = 'out of memory';
    error = e instanceof Error ? e.message : String(e);
    aborted = !engineSurvives(e);
  }
  return {
    method: options.method,
    status,
    error,
    aborted,
    candidates: N,
    triples: tasks.length,
    answered: predictions.length,
    accuracy: predictions.length ? correct / predictions.length : null,
    chance: 1 / N,
    mean_rank: predictions.length ? predictions.reduce((a, p) => a + p.rank, 0) / predictions.length : null,
    tokens_median: median(predictions.map((p) => p.tokens)),
    encodes_per_triple: options.method === 'ps3' ? N : 1,
    ms_per_triple_median: median(predictions.map((p) => p.ms)),
    predictions,
  };
}

/** A plain-text table of retrieval reports. */
export function formatRetrievalTable(reports: readonly RetrievalReport[]): string {
  const header = ['method', 'status', 'triples', 'top-1', 'chance', 'mean rank', 'tokens/triple', 'ms/triple'];
  const pct = (x: number | null): string => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
  const rows = reports.map((r) => [
    r.method, r.status, `${r.answered}/${r.triples}`, pct(r.accuracy), pct(r.chance), r.mean_rank === null ? '—' : r.mean_rank.toFixed(2),
    r.tokens_median === null ? '—' : String(r.tokens_median), r.ms_per_triple_median === null ? '—' : r.ms_per_triple_median.toFixed(0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
