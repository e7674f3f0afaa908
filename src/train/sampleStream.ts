/**
 * The run's sample stream: the data set's entries in their seeded order, each made into a
 * training sample with an augmentation generator that depends only on (seed, sample index) —
 * which is what makes a resumed run see exactly the samples an uninterrupted one would.
 */
import { isUserError, UserError } from '../errors.js';
import { Rng } from '../rng.js';
import type { ShardDataset } from '../io/shards.js';
import type { ForcingCapacity } from '../model/selection.js';
import { makeSample, type SampleOptions } from './samples.js';
import { resize } from '../tensor/resample.js';
import type { BufferPool } from '../tensor/bufferPool.js';
import type { SampleSource, TrainSample } from './batch.js';

/** A 32-bit mix of (seed, index): each sample's augmentation depends only on these two. */
export function sampleSeed(seed: number, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (index >>> 0), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** What both streams (shards, synth) make of each entry. */
export interface StreamOptions {
  size: number;
  globalCaptionProb: number;
  /** local (box, caption) pairs per image for the contrastive term (default 1) */
  regions?: number;
  /** what one look can force, for the regions (samples.ts) */
  forcing?: ForcingCapacity;
  resizes?: ReadonlyArray<readonly [number, number]>;
  /** where the samples' big arrays come from (and should go back to once used) */
  pool?: BufferPool;
}

/** The sample options every stream shares: the reference's normalisation, and the run's regions. */
export function sampleOptions(options: StreamOptions): SampleOptions {
  return { size: options.size, globalCaptionProb: options.globalCaptionProb, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], ...(options.regions ? { regions: options.regions } : {}), ...(options.forcing ? { forcing: options.forcing } : {}) };
}

/** A sample with the encoder's other sizes added, when the stream is asked for them. */
export function withResizes<T extends TrainSample>(sample: T, options: StreamOptions): T {
  if (!options.resizes?.length) return sample;
  const S = options.size;
  const { pool } = options;
  const resized = new Map(options.resizes.map(([h, w]) => [`${h}x${w}`, resize(sample.pixels, 3, S, S, h, w, 'bicubic', pool?.float32(3 * h * w))]));
  return { ...sample, resized };
}

/**
 * The samples of a run in order, starting after the first `skip`. An entry whose image does not
 * decode is skipped and counted (it still uses up its index, so resume stays exact).
 */
export function sampleSource(
  dataset: ShardDataset,
  seed: number,
  skip: number,
  options: StreamOptions & { onBadImage?: (key: string, message: string) => void },
): SampleSource & { readonly seen: number; readonly badImages: number } {
  const stream = dataset.samples({ skip });
  let index = skip;
  let badImages = 0;
  return {
    get seen() {
      return index;
    },
    get badImages() {
      return badImages;
    },
    async next(): Promise<TrainSample> {
      for (;;) {
        const r = await stream.next();
        if (r.done) throw new UserError('the data stream ended (no valid samples?)');
        const rng = new Rng(sampleSeed(seed, index++));
        try {
          return withResizes(await makeSample(r.value, rng, sampleOptions(options), options.pool), options);
        } catch (e) {
          if (!isUserError(e)) throw e;
          badImages++;
          options.onBadImage?.(r.value.key, e.message);
        }
      }
    },
  };
}
