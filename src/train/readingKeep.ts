/**
 * The keep term of a reading stage: crops of natural scenes, at every scale, with the tokens a
 * kept trunk (the one the run must not drift from, e.g. the shipped model) gives them. A stage
 * that rewards strokes alone wears other things out of the tokens — colour above all
 * (models/ps3-tiny/TRAINING.md) — so the step also pulls the trunk's tokens on these crops back
 * toward the kept trunk's (reading.ts `keepLoss`), a distillation in the manner of "learning
 * without forgetting".
 *
 * Crops are cut as the encoder sees a scale: the scene drawn at the top scale, normalised, and
 * resized to the scale as the encoder resizes it (`scaledScene`). Half of a scale's crops are
 * centred on the scene's objects, half lie anywhere. The pool is made once, at the start: the
 * kept tokens are fixed, and the step takes batch `step mod batches`, so a resumed run draws the
 * same batches.
 *
 * In a look (`inLook`): crops alone keep the tokens of crops alone, and a look's tokens also
 * attend to the scene's low-res tokens — a run that kept its crops' colour lost it in the looks
 * (models/ps3-tiny/TRAINING.md). Then a batch is one scene's crops of one high-res scale, run as
 * one look beside the scene's own low-res pass, and both the low-res tokens and the look's are
 * held near the kept trunk's in the same pass. No crop of a look touches a label or a sign: kept
 * trunks do not read, and a keep term on the characters in a real look undid the reading there.
 */
import { tf } from '../tensor/engine.js';
import { fnv1a, Rng } from '../rng.js';
import type { PS3Model } from '../model/load.js';
import { lowRes } from '../model/encoder.js';
import { finalNorm } from '../model/vit.js';
import type { Weights } from '../model/weights.js';
import { blockCells, cropTokens, keepLoss, type KeepBatch } from './reading.js';
import { scaledScene } from './readingContext.js';

export interface KeepPoolOptions {
  /** scene stream: training scenes below the held-out base, or a validation seed for the checks */
  readonly seed: number;
  readonly scenes: number;
  /** crops a scale of each scene */
  readonly cropsPerScale: number;
  /** crop side in pixels, a whole number of patches */
  readonly side: number;
  readonly batch: number;
  /** each batch one scene's crops of a high-res scale (`batch` of them), read in a look beside the scene's low-res pass */
  readonly inLook?: boolean;
}

/** Random places tried for a look's keep crop clear of labels and signs before it is left out. */
const KEEP_TRIES = 50;

interface Crop {
  readonly pixels: Float32Array;
  readonly cells: Int32Array;
}

/** [3, side, side] of a [3, height, width] plane at block (row0, col0) of the patch grid, and the block's cells. */
function cutBlock(image: { data: Float32Array; height: number; width: number }, P: number, side: number, row0: number, col0: number): Crop {
  const { data, height, width } = image;
  const pixels = new Float32Array(3 * side * side);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < side; y++) {
      const from = c * height * width + (row0 * P + y) * width + col0 * P;
      pixels.set(data.subarray(from, from + side), (c * side + y) * side);
    }
  }
  return { pixels, cells: blockCells(row0, col0, side / P, Math.floor(width / P)) };
}

function toBatch(crops: readonly Crop[], side: number, scale: number): Omit<KeepBatch, 'kept'> {
  const pixels = new Float32Array(crops.length * 3 * side * side);
  crops.forEach((c, i) => pixels.set(c.pixels, i * c.pixels.length));
  const cells = new Int32Array(crops.length * crops[0]!.cells.length);
  crops.forEach((c, i) => cells.set(c.cells, i * c.cells.length));
  return { batch: crops.length, side, pixels, cells, scale };
}

/**
 * The pool: scenes `seed`, 0 .. scenes - 1, cut at every scale of the model, batched one scale a
 * batch (the scales taking turns), each batch with `kept`'s tokens; in a look, one batch a scene
 * and high-res scale, in a fixed shuffled order. `onScene` hears each scene cut.
 */
export function keepPool(model: PS3Model, kept: Weights, o: KeepPoolOptions, onScene?: (done: number) => void): KeepBatch[] {
  const cfg = model.config.vision;
  const P = cfg.trunk.patchSize;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const s0 = cfg.scales[0]!;
  const g = o.side / P;
  const byScale: Crop[][] = cfg.scales.map(() => []);
  const looks: KeepBatch[] = [];
  for (let i = 0; i < o.scenes; i++) {
    const { scene, images } = scaledScene(model, o.seed, i);
    const place = new Rng(fnv1a([o.seed, i], 0x6b656570));
    const perScale = o.inLook ? o.batch : o.cropsPerScale;
    const written = scene.objects.filter((x) => x.label !== null).map((x) => x.box);
    const objects = (o.inLook ? scene.objects.filter((x) => x.label === null) : scene.objects).slice(0, Math.floor(perScale / 2));
    const cut = cfg.scales.map((_, s): Crop[] => {
      if (o.inLook && s === 0) return [];
      const image = images.at(s);
      const grid = Math.floor(image.width / P);
      const room = grid - g;
      if (room < 0) return [];
      const at = (centre: number): number => Math.min(room, Math.max(0, Math.round((centre * image.width) / S / P - g / 2)));
      // the block's box in top-scale pixels, against the boxes of everything written on
      const px = (P * S) / image.width;
      type Place = readonly [number, number];
      const clear = ([row0, col0]: Place): boolean => written.every((w) => w[2] <= col0 * px || w[0] >= (col0 + g) * px || w[3] <= row0 * px || w[1] >= (row0 + g) * px);
      const anywhere = (): Place | null => {
        if (!o.inLook) return [place.int(0, room), place.int(0, room)];
        for (let tries = 0; tries < KEEP_TRIES; tries++) {
          const rc: Place = [place.int(0, room), place.int(0, room)];
          if (clear(rc)) return rc;
        }
        return null;
      };
      return Array.from({ length: perScale }, (_, k): Place | null => {
        const object = objects[k];
        const rc: Place | null = object ? [at(object.center[1]), at(object.center[0])] : anywhere();
        return rc && (!o.inLook || clear(rc)) ? rc : null;
      }).flatMap((rc) => (rc ? [cutBlock(image, P, o.side, rc[0], rc[1])] : []));
    });
    if (o.inLook) {
      const low = images.sized(s0, s0);
      tf.tidy(() => {
        // the kept trunk's low-res pass, and each scale's crops as a look beside it
        const pass = lowRes(kept, cfg, { data: low, batch: 1, height: s0, width: s0 }, true);
        const lowres = { pixels: Float32Array.from(low), kept: finalNorm(kept, cfg.trunk, pass.hiddenStates[pass.hiddenStates.length - 1]!).dataSync() as Float32Array };
        cut.forEach((crops, scale) => {
          if (crops.length === 0) return;
          const b = toBatch(crops, o.side, scale);
          looks.push({ ...b, lowres, kept: cropTokens(kept, cfg, { ...b, context: pass.kvCache }).dataSync() as Float32Array });
        });
      });
    } else cut.forEach((crops, s) => byScale[s]!.push(...crops));
    onScene?.(i + 1);
  }
  const order = new Rng(fnv1a([o.seed, o.scenes], 0x6f726472));
  if (o.inLook) return order.shuffle(looks);
  const perScale = byScale.map((crops, scale) => {
    const shuffled = order.shuffle([...crops]);
    const batches: Omit<KeepBatch, 'kept'>[] = [];
    for (let from = 0; from + o.batch <= shuffled.length; from += o.batch) batches.push(toBatch(shuffled.slice(from, from + o.batch), o.side, scale));
    return batches;
  });
  const pool: KeepBatch[] = [];
  for (let j = 0; perScale.some((b) => j < b.length); j++) {
    for (const batches of perScale) {
      const b = batches[j];
      if (b) pool.push({ ...b, kept: tf.tidy(() => cropTokens(kept, cfg, b).dataSync() as Float32Array) });
    }
  }
  return pool;
}

/** The keep batch of a step. */
export function keepBatchAt(pool: readonly KeepBatch[], step: number): KeepBatch {
  return pool[step % pool.length]!;
}

/** The keep term over a whole pool, without gradients: how far the trunk's tokens have moved from the kept ones. */
export function keepDistance(w: Weights, model: PS3Model, pool: readonly KeepBatch[]): number {
  let sum = 0;
  let n = 0;
  for (const b of pool) {
    sum += tf.tidy(() => keepLoss(w, model.config.vision, b).dataSync()[0]!) * b.batch;
    n += b.batch;
  }
  return n ? sum / n : NaN;
}
