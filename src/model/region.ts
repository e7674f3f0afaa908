/**
 * Scoring text against what PS3 looked at — the CLIP way, with the encoder alone: the text's
 * prompt drives top-down selection, the chosen high-res tokens are pooled by the MAP head (after
 * the trunk's final norm, as in pre-training), and the pooled feature is compared with the text
 * feature by cosine; the SigLIP logit e^t cos + b gives a probability.
 */
import { tf } from '../tensor/engine.js';
import { encodeImage, type EncodeOptions, type EncodeOutput, type Pixels } from './encoder.js';
import { l2Normalize } from './layers.js';
import type { PS3Model } from './load.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { encodeText } from './text.js';
import { finalNorm, mapPool } from './vit.js';

export interface RegionScore {
  readonly cosine: number;
  /** sigmoid(e^t cos + b) with the model's logit scale and bias */
  readonly probability: number;
}

/** Text features (L2-normalised pooled output) and prompts for token ids [T, N]. */
export function textFeatures(model: PS3Model, ids: Int32Array, count: number): { features: tf.Tensor; prompts: tf.Tensor } {
  return tf.tidy(() => {
    const t = encodeText(model.weights, model.config.text, ids, count);
    return { features: l2Normalize(t.pooledOutput), prompts: t.prompt };
  });
}

/**
 * The text tower's top-down prompt ([D] each) of every text, in batches of `batch`: what PS3 looks
 * for when a caption-style text drives its selection.
 */
export function textPrompts(model: PS3Model, tokenizer: TextTokenizer, texts: readonly string[], batch = 32): Float32Array[] {
  const out: Float32Array[] = [];
  for (let i = 0; i < texts.length; i += batch) {
    const part = texts.slice(i, i + batch);
    const { features, prompts } = textFeatures(model, tokenizer.encode(part), part.length);
    const D = prompts.shape[1]!;
    const data = prompts.dataSync() as Float32Array;
    tf.dispose([features, prompts]);
    part.forEach((_, k) => out.push(data.slice(k * D, (k + 1) * D)));
  }
  return out;
}

/**
 * The pooled feature [B, D] of an encode: MAP pooling of its high-res tokens (or of the low-res
 * tokens when it chose none), L2-normalised.
 */
export function pooledRegion(model: PS3Model, out: EncodeOutput): tf.Tensor {
  return tf.tidy(() => {
    const cfg = model.config.vision;
    const n0 = (cfg.scales[0]! / cfg.trunk.patchSize) ** 2;
    const [B, N, D] = out.lastHiddenState.shape as [number, number, number];
    const tokens = N > n0 ? tf.slice(out.lastHiddenState, [0, n0, 0], [B, N - n0, D]) : out.lastHiddenState;
    return l2Normalize(mapPool(model.weights, cfg.trunk, finalNorm(model.weights, cfg.trunk, tokens)));
  });
}

export function logitParams(model: PS3Model): { scale: number; bias: number } {
  const scale = model.weights.has('logit_scale') ? Math.exp(model.weights.get('logit_scale').dataSync()[0]!) : Math.exp(model.config.initLogitScale);
  const bias = model.weights.has('logit_bias') ? model.weights.get('logit_bias').dataSync()[0]! : model.config.initLogitBias;
  return { scale, bias };
}

export function scoreOf(cosine: number, params: { scale: number; bias: number }): RegionScore {
  return { cosine, probability: 1 / (1 + Math.exp(-(params.scale * cosine + params.bias))) };
}

/**
 * Encode one image top-down with `prompt` [1, D] and return the encode plus its pooled region
 * feature [1, D]; the caller disposes both (`disposeEncode`).
 */
export async function encodeRegion(model: PS3Model, pixels: Pixels, prompt: tf.Tensor | undefined, options: Omit<EncodeOptions, 'prompt'>): Promise<{ out: EncodeOutput; region: tf.Tensor }> {
  const out = await encodeImage(model.weights, model.config, pixels, { ...options, ...(prompt ? { prompt } : {}), outputHiddenStates: false });
  return { out, region: pooledRegion(model, out) };
}

/** Dispose every tensor of an encode's output (probabilities may be shared between fields). */
export function disposeEncode(out: EncodeOutput): void {
  tf.dispose([...new Set([out.lastHiddenState, ...out.hiddenStates, ...out.selectionProbs, ...out.bottomupSelectionProbs, ...(out.topdownSelectionProbs ?? []), out.pooledOutput])]);
}
