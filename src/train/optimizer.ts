/**
 * AdamW with decoupled weight decay, as PyTorch's: p <- p * (1 - lr * wd), then the Adam step
 * with bias correction. Decay applies to tensors of rank >= 2 except norms, biases and the
 * logit scale and bias (open_clip's exclusion rule). State is plain named tensors, so it saves
 * to safetensors and restores exactly.
 */
import { tf } from '../tensor/engine.js';
import type { Weights } from '../model/weights.js';
import { ADAMW_STEP } from '../tensor/adamwKernel.js';

export interface AdamWOptions {
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWOptions = { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 3e-4 };

/** open_clip: no decay for rank < 2, norms ("ln", "norm", "bn"), biases, the logit scale and bias. */
export function decays(key: string, shape: readonly number[]): boolean {
  if (shape.length < 2) return false;
  return !/(^|\.)(ln_\w*|ln|bn|norm\d*|logit_scale|logit_bias)(\.|$)|bias$/.test(key);
}

export class AdamW {
  /** number of steps taken */
  step = 0;
  private readonly m = new Map<string, tf.Tensor>();
  private readonly v = new Map<string, tf.Tensor>();

  constructor(readonly options: AdamWOptions = DEFAULT_ADAMW) {}

  /**
   * Apply one update to `weights` in place for every key of `grads`: one kernel a tensor
   * (tensor/adamwKernel.ts). `lr` may be a function of the key (parameter groups of their own rates).
   */
  apply(weights: Weights, grads: ReadonlyMap<string, tf.Tensor>, lr: number | ((key: string) => number)): void {
    this.step += 1;
    const [beta1, beta2] = this.options.betas;
    const common = { beta1, beta2, correction1: 1 - beta1 ** this.step, correction2: 1 - beta2 ** this.step, eps: this.options.eps };
    for (const [key, g] of grads) {
      const p = weights.get(key);
      const rate = typeof lr === 'function' ? lr(key) : lr;
      const decay = decays(key, p.shape) ? 1 - rate * this.options.weightDecay : 1;
      const [next, m, v] = tf.tidy(() => {
        const inputs = { p, g, m: this.m.get(key) ?? tf.zerosLike(p), v: this.v.get(key) ?? tf.zerosLike(p) };
        return tf.engine().runKernel(ADAMW_STEP, inputs, { ...common, lr: rate, decay }) as tf.Tensor[];
      });
      this.m.get(key)?.dispose();
      this.v.get(key)?.dispose();
      this.m.set(key, m!);
      this.v.set(key, v!);
      weights.replace(key, next!);
    }
  }

  /** Named state for saving: `m/<key>`, `v/<key>`. */
  state(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [k, t] of this.m) out.set(`m/${k}`, t);
    for (const [k, t] of this.v) out.set(`v/${k}`, t);
    return out;
  }

  /** Restore from `state()`'s names (the tensors are taken over). */
  load(state: ReadonlyMap<string, tf.Tensor>, step: number): void {
    this.dispose();
    for (const [name, t] of state) {
      if (name.startsWith('m/')) this.m.set(name.slice(2), t);
      else if (name.startsWith('v/')) this.v.set(name.slice(2), t);
    }
    this.step = step;
  }

  dispose(): void {
    tf.dispose([...this.m.values(), ...this.v.values()]);
    this.m.clear();
    this.v.clear();
  }
}

/** Scale gradients so their global L2 norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradients(grads: Map<string, tf.Tensor>, maxNorm: number): number {
  const squared = tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))));
  const norm = Math.sqrt(squared.dataSync()[0]!);
  squared.dispose();
  if (maxNorm > 0 && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (const [k, g] of grads) {
      grads.set(k, tf.mul(g, scale));
      g.dispose();
    }
  }
  return norm;
}
