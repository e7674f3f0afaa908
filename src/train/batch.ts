/**
 * Training samples and the batches made of them: pixels and box maps stacked, captions
 * tokenised. A batch split between threads (gradShards.ts) is stacked shard by shard, and its
 * captions are cut into the shards' rows.
 */
import type { TextTokenizer } from '../io/tokenizer.js';
import type { Box } from '../io/shards.js';
import type { Pixels } from '../model/encoder.js';
import type { BufferPool } from '../tensor/bufferPool.js';
import type { PretrainBatch, PretrainLabels } from './objective.js';
import { drawNegatives, type HardNegativeLabels, type HardNegativeSpec } from './hardNegatives.js';

/** One prepared sample: normalised pixels [3, S, S], box map [S, S], caption. */
export interface TrainSample {
  readonly pixels: Float32Array;
  readonly gt: Float32Array;
  readonly isGlobal: number;
  readonly caption: string;
  /** `pixels` resized to the encoder's other sizes ("HxW" -> [3, H, W]), made by the data thread */
  readonly resized?: ReadonlyMap<string, Float32Array>;
  /** other local regions of the image for the contrastive term (`--regions`) */
  readonly regions?: ReadonlyArray<{ readonly caption: string; readonly box: Box }>;
}

/** Where samples come from: the `index`-th sample of the run's stream, in order. */
export interface SampleSource {
  next(): Promise<TrainSample>;
  /** the samples are used up: their arrays may be filled again */
  recycle?(samples: readonly TrainSample[]): void;
}

/** Pixels [B, 3, S, S] (and the resizes every sample carries) and box maps [B, S, S]; with `pool`, the arrays come from there. */
export function collatePixels(samples: readonly TrainSample[], size: number, pool?: BufferPool): { pixels: Pixels; gtSelectionMaps: Float32Array } {
  const B = samples.length;
  const plane = 3 * size * size;
  const pixels = pool ? pool.float32(B * plane) : new Float32Array(B * plane);
  const gt = pool ? pool.float32(B * size * size) : new Float32Array(B * size * size);
  samples.forEach((s, b) => {
    pixels.set(s.pixels, b * plane);
    gt.set(s.gt, b * size * size);
  });
  // the resizes every sample carries, stacked like the pixels
  const resized = new Map<string, Float32Array>();
  for (const key of samples[0]?.resized?.keys() ?? []) {
    if (!samples.every((s) => s.resized?.has(key))) continue;
    const one = samples[0]!.resized!.get(key)!.length;
    const stacked = pool ? pool.float32(B * one) : new Float32Array(B * one);
    samples.forEach((s, b) => stacked.set(s.resized!.get(key)!, b * one));
    resized.set(key, stacked);
  }
  return { pixels: { data: pixels, batch: B, height: size, width: size, ...(resized.size ? { resized } : {}) }, gtSelectionMaps: gt };
}

/**
 * The captions of a batch of samples, tokenised, with their regions (owners in batch order);
 * with `negatives`, each local caption's hard negatives (hardNegatives.ts).
 */
export function collateLabels(samples: readonly TrainSample[], tokenizer: TextTokenizer, negatives?: HardNegativeSpec): PretrainLabels {
  const owner: number[] = [];
  const boxes: Box[] = [];
  const captions: string[] = [];
  samples.forEach((s, b) =>
    s.regions?.forEach((r) => {
      owner.push(b);
      boxes.push(r.box);
      captions.push(r.caption);
    }),
  );
  const text = tokenizer.encode(samples.map((s) => s.caption));
  const isGlobalText = Float32Array.from(samples, (s) => s.isGlobal);
  const regionText = owner.length ? tokenizer.encode(captions) : undefined;
  return {
    text,
    isGlobalText,
    ...(regionText ? { regions: { text: regionText, owner: Int32Array.from(owner), boxes } } : {}),
    ...(negatives ? { negatives: drawNegatives(negatives, text, isGlobalText, regionText) } : {}),
  };
}

/** A batch from samples; with `pool`, its arrays come from there (hand them back with `releaseBatch`). */
export function collate(samples: readonly TrainSample[], size: number, tokenizer: TextTokenizer, pool?: BufferPool, negatives?: HardNegativeSpec): PretrainBatch {
  return { ...collatePixels(samples, size, pool), ...collateLabels(samples, tokenizer, negatives) };
}

/** Rows [from, to) of a batch's labels, regions re-owned to those rows. */
export function labelRows(labels: PretrainLabels, from: number, to: number): PretrainLabels {
  const B = labels.isGlobalText.length;
  const N = labels.text.length / B;
  const r = labels.regions;
  const kept = r ? [...r.owner.keys()].filter((k) => r.owner[k]! >= from && r.owner[k]! < to) : [];
  const neg = labels.negatives;
  return {
    text: labels.text.slice(from * N, to * N),
    isGlobalText: labels.isGlobalText.slice(from, to),
    ...(r && kept.length
      ? {
          regions: {
            text: Int32Array.from(kept.flatMap((k) => [...r.text.subarray(k * N, (k + 1) * N)])),
            owner: Int32Array.from(kept, (k) => r.owner[k]! - from),
            boxes: kept.map((k) => r.boxes[k]!),
          },
        }
      : {}),
    ...(neg ? { negatives: negativeRows(neg, N, B, from, to, kept) } : {}),
  };
}

/** The negatives of rows [from, to) of a batch of B and of the regions `kept`. */
function negativeRows(neg: HardNegativeLabels, N: number, B: number, from: number, to: number, kept: readonly number[]): HardNegativeLabels {
  const K = neg.valid.length / B;
  const rows = (text: Int32Array, valid: Float32Array, picked: readonly number[]): { text: Int32Array; valid: Float32Array } => ({
    text: Int32Array.from(picked.flatMap((p) => [...text.subarray(p * K * N, (p + 1) * K * N)])),
    valid: Float32Array.from(picked.flatMap((p) => [...valid.subarray(p * K, (p + 1) * K)])),
  });
  const own = rows(neg.text, neg.valid, Array.from({ length: to - from }, (_, i) => from + i));
  const regions = neg.regionText && neg.regionValid && kept.length ? rows(neg.regionText, neg.regionValid, kept) : null;
  return { ...own, ...(regions ? { regionText: regions.text, regionValid: regions.valid } : {}) };
}

/** A batch's arrays back to the pool they came from, once the step is done with them. */
export function releaseBatch(batch: PretrainBatch, pool: BufferPool): void {
  pool.give(batch.pixels.data, batch.gtSelectionMaps, ...(batch.pixels.resized?.values() ?? []));
}

/** Arrays of rows, one after the other. */
export function concatArrays(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
