/**
 * A trained model grown to more high-res scales (a resolution curriculum: train at a 1512 top
 * scale, then go on at 3780). Every weight whose key and shape the larger model shares is
 * copied. Two modules output one chunk per high-res scale, of which PS3 only ever uses the first
 * (`selection_feature_proj.fc2`, `prompt_proj_for_highres`): their first chunk is copied and the
 * new chunks keep the fresh initialisation. A new scale's `pos_emb_residual` starts at zero, so
 * the new scale first sees the resampled position embedding alone.
 *
 * The target may also have another selection ConvNeXt (a finer stem, more channels or blocks: a
 * `*-select` preset). Its weights cannot carry over in part — a finer stem sees other pixels — so
 * the whole module and the prompt projection that meets it (`prompt_proj_for_highres`) start from
 * the target's fresh initialisation, and the rest (trunk, text tower, the low-res selection
 * projection, prior prompt) is copied.
 */
import { tf } from '../tensor/engine.js';
import type { PS3Config } from '../io/config.js';
import { UserError } from '../errors.js';
import type { PS3Model } from './load.js';
import { randomModel } from './load.js';
import { Weights } from './weights.js';
import { CONVNET_PREFIX } from './convnet.js';

/** Keys whose leading dimension is one chunk per high-res scale, of which only the first is used. */
const PER_SCALE_CHUNKED = [
  'vision_model.selection_feature_proj.fc2.weight',
  'vision_model.selection_feature_proj.fc2.bias',
  'vision_model.prompt_proj_for_highres.weight',
  'vision_model.prompt_proj_for_highres.bias',
];

export interface GrowReport {
  readonly copied: number;
  /** keys of which the first per-scale chunk was copied */
  readonly firstChunk: string[];
  /** keys started at zero: new scales' position residuals */
  readonly zeroed: string[];
  /** keys drawn afresh: the selection ConvNeXt and its prompt projection, when the target's differs */
  readonly fresh: string[];
}

const CONVNET_PROMPT = 'vision_model.prompt_proj_for_highres.';

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** `source`'s weights in a model of `target` (same trunk and text tower; more high-res scales, or another selection ConvNeXt). */
export function growModel(source: PS3Model, target: PS3Config, seed = 0): { model: PS3Model; report: GrowReport } {
  const from = source.config.vision.scales;
  const to = target.vision.scales;
  if (!from.every((s, i) => to[i] === s) || to.length < from.length) {
    throw new UserError(`cannot grow ${source.source} (scales ${from.join(', ')}) to scales ${to.join(', ')}: the target must keep the source's scales and may only add larger ones`);
  }
  const a = source.config.vision;
  const b = target.vision;
  if (a.highresSelectionFeature !== b.highresSelectionFeature) {
    throw new UserError(`cannot grow ${source.source}: it ${a.highresSelectionFeature ? 'has a' : 'has no'} selection ConvNeXt and the target ${b.highresSelectionFeature ? 'has one' : 'has none'}`);
  }
  const newConvnet = b.highresSelectionFeature && (['kernel', 'hidden', 'out', 'depth'] as const).some((k) => a.convnet[k] !== b.convnet[k]);
  const fresh = randomModel(target, seed);
  const tensors = new Map<string, tf.Tensor>();
  const firstChunk: string[] = [];
  const zeroed: string[] = [];
  const drawn: string[] = [];
  let copied = 0;
  const newResiduals = new Set(to.slice(from.length).map((_, i) => `vision_model.pos_emb_residual.${from.length - 1 + i}`));
  for (const [key, init] of fresh.weights.entries()) {
    const shape = init.shape;
    if (newResiduals.has(key)) {
      tensors.set(key, tf.zerosLike(init));
      zeroed.push(key);
      continue;
    }
    if (newConvnet && (key.startsWith(CONVNET_PREFIX) || key.startsWith(CONVNET_PROMPT))) {
      tensors.set(key, tf.clone(init));
      drawn.push(key);
      continue;
    }
    if (!source.weights.has(key)) {
      throw new UserError(`cannot grow ${source.source}: it has no "${key}"`);
    }
    const old = source.weights.get(key);
    if (sameShape(old.shape, shape)) {
      tensors.set(key, tf.clone(old));
      copied++;
    } else if (PER_SCALE_CHUNKED.includes(key) && old.shape.length === shape.length && old.shape.slice(1).every((v, i) => v === shape[i + 1])) {
      const chunk = shape[0]! / (to.length - 1);
      tensors.set(key, tf.tidy(() => tf.concat([tf.slice(old, 0, chunk), tf.slice(init, chunk)], 0)));
      firstChunk.push(key);
    } else {
      throw new UserError(`cannot grow ${source.source}: "${key}" is [${old.shape.join(', ')}], the target needs [${shape.join(', ')}]`);
    }
  }
  fresh.weights.dispose();
  const what = [to.length > from.length ? `scales ${to.join(', ')}` : '', newConvnet ? `a ${b.convnet.kernel} px, ${b.convnet.hidden}-channel, ${b.convnet.depth}-block selection ConvNeXt` : ''].filter(Boolean).join(' and ') || 'the same shape';
  return { model: { config: target, weights: new Weights(tensors), source: `${source.source} grown to ${what}` }, report: { copied, firstChunk, zeroed, fresh: drawn } };
}
