/**
 * Reading in a look. A reading stage that runs each glyph crop alone teaches tokens that attend
 * only to each other, and in the encoder's own pass they do not: a look's tokens attend to the
 * scene's low-res tokens and to the rest of the look. On the project's runs that shift undid the
 * reading — the head named 13 % of held-out scene characters from crops and 4 % (chance 2.8 %)
 * from the same blocks in a look (models/ps3-tiny/TRAINING.md). With a context pool, each step's
 * crops run together as one look beside a training scene's low-res keys and values, computed with
 * the step's weights and held constant (their gradient would be the low-res pass's, which the
 * keep term and pre-training look after).
 *
 * The pool holds the scenes' low-res images (the top-scale render, normalised and resized as the
 * encoder resizes it), made once; step k reads scene k mod pool size, so a resumed run sees the same.
 */
import { tf } from '../tensor/engine.js';
import { imageProcessor, type PS3Model } from '../model/load.js';
import { lowRes, ScaledImages } from '../model/encoder.js';
import type { KV } from '../model/vit.js';
import type { Weights } from '../model/weights.js';
import { normalise } from '../io/pixels.js';
import { renderScene } from '../data/scene/render.js';
import { sceneRng } from '../data/synth.js';
import type { Scene } from '../data/scene/types.js';

/** Scene `index` of stream `seed` drawn at the top scale, normalised as the model's processor does, at every scale the encoder resizes it to. */
export function scaledScene(model: PS3Model, seed: number, index: number): { scene: Scene; images: ScaledImages } {
  const cfg = model.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const { mean, std } = imageProcessor(model);
  const scene = renderScene(sceneRng(seed, index), { width: S, height: S });
  return { scene, images: new ScaledImages(cfg, { data: normalise({ data: scene.rgb, width: S, height: S }, mean, std), batch: 1, height: S, width: S }) };
}

/** Low-res images [3, s0, s0] of scenes `seed`, 0 .. scenes - 1. */
export function contextPool(model: PS3Model, seed: number, scenes: number, onScene?: (done: number) => void): Float32Array[] {
  const s0 = model.config.vision.scales[0]!;
  const pool: Float32Array[] = [];
  for (let i = 0; i < scenes; i++) {
    pool.push(scaledScene(model, seed, i).images.sized(s0, s0));
    onScene?.(i + 1);
  }
  return pool;
}

/** Step `step`'s scene's low-res keys and values under weights `w`, one per block (the caller frees them with `disposeKv`). */
export function contextAt(w: Weights, model: PS3Model, pool: readonly Float32Array[], step: number): KV[] {
  const cfg = model.config.vision;
  const s0 = cfg.scales[0]!;
  const out = lowRes(w, cfg, { data: pool[step % pool.length]!, batch: 1, height: s0, width: s0 }, true);
  tf.dispose(out.hiddenStates);
  return out.kvCache;
}
