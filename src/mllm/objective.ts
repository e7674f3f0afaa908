/**
 * VILA-HD's training objective for one cached question (trainData.ts):
 *
 *  - answer loss: the LM reads [visual tokens, question, answer] and the next-token
 *    cross-entropy is averaged over the answer's words and its [EOS] (in the captions task the
 *    "answer" is a region's caption, and there is no selection loss);
 *  - selection loss (ps3): the LM reads [low-res tokens, question]; the prompt head turns its
 *    state at the end of the question into a PS3 prompt; PS3's top-down probabilities for that
 *    prompt (recomputed from the cached selection inputs, PS3's weights constant) are scored
 *    against the evidence box with the pre-training box BCE (src/train/loss.ts), or its balanced
 *    form (the box's patches and the rest weighed equally: an evidence box is a few patches of
 *    thousands, so the plain mean leaves "select nothing" close to optimal).
 *
 *  - choice (with a choice weight, questions with options): the softmax over the options'
 *    log-likelihoods (each option's ids and [EOS] read after [visual, question], summed: the score
 *    `eval qa` answers by), -log of the truth's share. The next-token loss rewards writing one of
 *    the options long before it rewards telling them apart; this term's gradient is the difference
 *    between the options, so it asks for the image where the options alone do not decide. The
 *    options run packed after one [visual, question] (lm.ts `packedLayout`), and the answer loss
 *    is read from the truth's rows of that same pass.
 *
 * Total = answer + selection_weight x selection + choice_weight x choice; the gradient reaches
 * the prompt head through the probabilities, and, in a run that tunes the selection, PS3's
 * selection modules (the selection features' projection, the high-res prompt projection and the
 * ConvNeXt, whose features are then recomputed from the cached input image).
 *
 * A run that tunes PS3's last blocks (`--tune-trunk`, `TunedTrunk`) reads, instead of the final
 * tokens, the hidden states entering the first tuned block, runs the tuned blocks (low-res, then
 * the look attending to the low-res keys and values) and merges their final-normed tokens at each
 * step, so every term's gradient reaches those blocks; the selection features of the layers they
 * make come from the same pass.
 */
import { tf } from '../tensor/engine.js';
import type { NamedArray } from '../io/safetensors.js';
import type { PS3Model } from '../model/load.js';
import { selectionLogits, selectionProbs } from '../model/selection.js';
import { finalNorm, trunk } from '../model/vit.js';
import { shallowConvNet } from '../model/convnet.js';
import { Weights } from '../model/weights.js';
import { boxLoss, type BoxLossKind } from '../train/loss.js';
import type { EncodeMethod } from '../model/baselines.js';
import type { LmConfig } from './config.js';
import { embedTokens, lmForward, packedLayout, targetLogProbs } from './lm.js';
import { mergeTokens, project, promptHead } from './projector.js';
import type { LmTokenizer } from './tokenizer.js';
import { questionText } from './tokenizer.js';
import type { TrainQuestion } from './trainData.js';
import { highResGrids, lowResGrid } from './visual.js';

export interface SampleInputs {
  readonly question: TrainQuestion;
  readonly arrays: ReadonlyMap<string, NamedArray>;
}

function tensorOf(arrays: ReadonlyMap<string, NamedArray>, key: string): tf.Tensor {
  const a = arrays.get(key);
  if (!a) throw new Error(`training cache: no "${key}"`);
  return tf.tensor(a.data, [...a.shape]);
}

/**
 * PS3's last blocks as a run that tunes them reads them (`--tune-trunk`): the step's PS3 weights
 * (the tuned keys live) and the first tuned block, whose entering hidden states the cache holds.
 */
export interface TunedTrunk {
  readonly ps3: PS3Model;
  readonly weights: Weights;
  readonly firstBlock: number;
}

/**
 * The merged low-res and (with `look`, ps3) high-res tokens of a sample through the tuned blocks:
 * the low-res states run them keeping their keys and values, the look's states run them attending
 * to those, as PS3's high-res pass does; both final-normed and merged for the projector.
 * `hidden` gives the low-res hidden states of the tuned blocks ([1, N0, D] by block) for the
 * selection features.
 */
export function tunedTokens(t: TunedTrunk, s: SampleInputs, look = true): { low: tf.Tensor; high: tf.Tensor | null; hidden: Map<number, tf.Tensor> } {
  const cfg = t.ps3.config.vision;
  const D = cfg.trunk.width;
  const g0 = lowResGrid(t.ps3);
  const tokens = (h: readonly tf.Tensor[]): tf.Tensor => tf.reshape(finalNorm(t.weights, cfg.trunk, h[h.length - 1]!), [-1, D]);
  const low = trunk(t.weights, cfg.trunk, tensorOf(s.arrays, 'lowin'), { keepKv: look, firstBlock: t.firstBlock });
  const lowMerged = mergeTokens(tokens(low.hiddenStates), [{ height: g0, width: g0, offset: 0, ids: null }]);
  const hidden = new Map(low.hiddenStates.map((h, i) => [t.firstBlock + i, h]));
  if (!look) return { low: lowMerged, high: null, hidden };
  const own = s.question.look ?? s.question.index;
  const high = trunk(t.weights, cfg.trunk, tensorOf(s.arrays, `highin.${own}`), { cache: low.kvCache, firstBlock: t.firstBlock });
  const maps = cfg.scales.slice(1).map((_, i) => {
    const a = s.arrays.get(`chosen.${own}.${i}`);
    if (!a) throw new Error(`training cache: no "chosen.${own}.${i}"`);
    return { height: a.shape[0]!, width: a.shape[1]!, data: Uint8Array.from(a.data) };
  });
  return { low: lowMerged, high: mergeTokens(tokens(high.hiddenStates), highResGrids(t.ps3, maps)), hidden };
}

/**
 * A sample's visual tokens for the LM, projected ([m, W]), and (ps3) the projected low-res part
 * alone; a decoy reads another question's look. With `tuned` (ps3, lowres), PS3's last blocks run
 * first (`tunedTokens`), and their low-res hidden states come back for the selection.
 */
export function sampleVisual(w: Weights, method: EncodeMethod, s: SampleInputs, tuned?: TunedTrunk): { visual: tf.Tensor; low: tf.Tensor | null; hidden: Map<number, tf.Tensor> } {
  if (method === 'lowres' && tuned) return { visual: project(w, method, tunedTokens(tuned, s, false).low), low: null, hidden: new Map() };
  if (method !== 'ps3') return { visual: project(w, method, tensorOf(s.arrays, 'visual')), low: null, hidden: new Map() };
  const merged = tuned ? tunedTokens(tuned, s) : { low: tensorOf(s.arrays, 'low'), high: tensorOf(s.arrays, `high.${s.question.look ?? s.question.index}`), hidden: new Map<number, tf.Tensor>() };
  const low = project(w, method, merged.low);
  return { visual: tf.concat([low, project(w, method, merged.high!)], 0), low, hidden: merged.hidden };
}

/**
 * The LM's states [n, W] that predict the answer's n ids (its words and [EOS]), reading
 * [visual, question, answer without its last id]: each row predicts the id in `ids` at its place.
 */
export function answerRows(w: Weights, method: EncodeMethod, lm: LmConfig, tokenizer: LmTokenizer, q: TrainQuestion, visual: tf.Tensor): { rows: tf.Tensor; ids: Int32Array } {
  const p = `${method}.lm`;
  const answer = q.target ?? q.options[q.answer]!;
  const qIds = tokenizer.encode(questionText(q.question, q.options));
  const ids = Int32Array.from([...tokenizer.encode(answer), tokenizer.eosId]);
  const inputs = tf.concat([visual, embedTokens(w, p, qIds), embedTokens(w, p, ids.subarray(0, ids.length - 1))], 0);
  const { hidden } = lmForward(w, p, lm, inputs);
  return { rows: tf.slice(hidden, [visual.shape[0]! + qIds.length - 1, 0], [ids.length, -1]), ids };
}

/**
 * Every option's rows and ids as `answerRows` gives them for that option, from one pass over
 * [visual, question, option_1, ..., option_K] with the options packed side by side.
 */
export function optionRows(w: Weights, method: EncodeMethod, lm: LmConfig, tokenizer: LmTokenizer, q: TrainQuestion, visual: tf.Tensor): { rows: tf.Tensor; ids: Int32Array }[] {
  const p = `${method}.lm`;
  const qIds = tokenizer.encode(questionText(q.question, q.options));
  const ids = q.options.map((o) => Int32Array.from([...tokenizer.encode(o), tokenizer.eosId]));
  const prefix = visual.shape[0]! + qIds.length;
  // an option's last id is only predicted, never read
  const read = ids.map((x) => x.subarray(0, x.length - 1));
  const inputs = tf.concat([visual, embedTokens(w, p, qIds), ...read.filter((x) => x.length > 0).map((x) => embedTokens(w, p, x))], 0);
  const { hidden } = lmForward(w, p, lm, inputs, { layout: packedLayout(prefix, read.map((x) => x.length)) });
  // the question's last state predicts every option's first id
  const last = tf.slice(hidden, [prefix - 1, 0], [1, -1]);
  let start = prefix;
  return ids.map((x, k) => {
    const n = read[k]!.length;
    const rows = n > 0 ? tf.concat([last, tf.slice(hidden, [start, 0], [n, -1])], 0) : last;
    start += n;
    return { rows, ids: x };
  });
}

/**
 * The loss terms of one question, as scalars (the caller is inside a tidy); `choice` only with
 * `choiceWeight` > 0. `ps3Weights`: PS3's weights as the step reads them (its tuned keys live).
 */
export function sampleLosses(
  w: Weights,
  method: EncodeMethod,
  lm: LmConfig,
  ps3: PS3Model,
  tokenizer: LmTokenizer,
  s: SampleInputs,
  ps3Weights: Weights = ps3.weights,
  boxLossKind: BoxLossKind = 'bce',
  choiceWeight = 0,
  tuned?: TunedTrunk,
): { answer: tf.Tensor; selection: tf.Tensor | null; choice: tf.Tensor | null } {
  const p = `${method}.lm`;
  const q = s.question;
  let selection: tf.Tensor | null = null;
  const { visual, low, hidden: lowHidden } = sampleVisual(w, method, s, tuned);
  // a caption's look was its region's box: no selection to learn from it
  if (low && q.target === undefined) {
    // where to look: [low-res, question] -> state at the question's end -> prompt -> probabilities
    const qIds = tokenizer.encode(questionText(q.question, q.options));
    const { hidden } = lmForward(w, p, lm, tf.concat([low, embedTokens(w, p, qIds)], 0));
    const prompt = promptHead(w, tf.slice(hidden, [hidden.shape[0]! - 1, 0], [1, -1]));
    const cfg = ps3.config.vision;
    const layers: tf.Tensor[] = [];
    for (const l of cfg.selectBasedOnLayer) layers[l] = lowHidden.get(l) ?? tensorOf(s.arrays, `sel.${l}`);
    // a run that tunes the ConvNeXt (the only one whose cache holds its input) recomputes its features
    const convIn = ps3Weights !== ps3.weights ? s.arrays.get('convin') : undefined;
    const conv = convIn ? shallowConvNet(ps3Weights, cfg, convIn.data as Float32Array, 1) : s.arrays.has('conv') ? tensorOf(s.arrays, 'conv') : null;
    const S = cfg.scales[cfg.scales.length - 1]!;
    const probs = selectionProbs(cfg, selectionLogits(ps3Weights, cfg, layers, conv, prompt), S, S);
    const targets = probs.map((_, i) => s.arrays.get(`target.${q.index}.${i}`)!.data as Float32Array);
    selection = boxLoss(probs, targets, [0], boxLossKind);
  }
  if (choiceWeight > 0 && q.target === undefined && q.options.length > 1) {
    const options = optionRows(w, method, lm, tokenizer, q, visual).map((r) => targetLogProbs(w, p, lm, r.rows, r.ids));
    const choice = tf.neg(tf.gather(tf.logSoftmax(tf.stack(options.map((o) => tf.sum(o)))), q.answer));
    return { answer: tf.neg(tf.mean(options[q.answer]!)), selection, choice };
  }
  const { rows, ids } = answerRows(w, method, lm, tokenizer, q, visual);
  return { answer: tf.neg(tf.mean(targetLogProbs(w, p, lm, rows, ids))), selection, choice: null };
}

export interface BatchLoss {
  readonly loss: number;
  /** the answer loss over every sample, captions included */
  readonly answer: number;
  /** the caption samples' part of `answer` */
  readonly caption: number;
  /** the choice term (0 without a choice weight) */
  readonly choice: number;
  readonly selection: number;
  readonly grads: Map<string, tf.Tensor>;
  /** gradients of the PS3 weights asked for (empty when PS3 is frozen) */
  readonly ps3Grads: Map<string, tf.Tensor>;
}

/** What a batch's loss is made of, beside the answer loss. */
export interface LossTerms {
  readonly selectionWeight: number;
  /**
   * PS3's keys trained with the LM (the selection modules or the trunk's last blocks, when a run
   * tunes them; their gradients come back under `ps3Grads`); default none
   */
  readonly ps3Trainable?: readonly string[];
  readonly boxLoss?: BoxLossKind;
  /**
   * what the sum of the samples' losses is divided by (default the batch's size): a shard of a
   * larger batch passes the whole batch's size, so the shards' losses and gradients add up to the
   * batch's
   */
  readonly denominator?: number;
  readonly choiceWeight?: number;
  /** the cache holds the hidden states entering this block, and the step runs the trunk from it */
  readonly trunkFrom?: number | null;
}

/** The terms a training step's setup (or a gradient worker's data) names, for a shard of a batch of `denominator`. */
export function lossTerms(s: { readonly selectionWeight: number; readonly boxLoss: BoxLossKind; readonly choiceWeight: number; readonly trunkFrom: number | null }, denominator: number, ps3Trainable: readonly string[] = []): LossTerms {
  return { selectionWeight: s.selectionWeight, ps3Trainable, boxLoss: s.boxLoss, denominator, choiceWeight: s.choiceWeight, trunkFrom: s.trunkFrom };
}

/**
 * Mean loss over a batch and its gradient for `trainable` keys (everything else constant), and
 * for `o.ps3Trainable` keys of PS3's weights.
 */
export function batchLossAndGrads(
  w: Weights,
  trainable: readonly string[],
  method: EncodeMethod,
  lm: LmConfig,
  ps3: PS3Model,
  tokenizer: LmTokenizer,
  batch: readonly SampleInputs[],
  o: LossTerms,
): BatchLoss {
  const ps3Trainable = o.ps3Trainable ?? [];
  const denominator = o.denominator ?? batch.length;
  const choiceWeight = o.choiceWeight ?? 0;
  const trunkFrom = o.trunkFrom ?? null;
  const terms = { answer: 0, caption: 0, selection: 0, choice: 0 };
  const { value, grads } = tf.tidy(() => {
    const f = (...xs: tf.Tensor[]): tf.Scalar => {
      const map = new Map<string, tf.Tensor>();
      for (const [k, t] of w.entries()) map.set(k, t);
      trainable.forEach((k, i) => map.set(k, xs[i]!));
      const live = new Weights(map, true);
      // PS3 as the step reads it: the tuned keys live, the rest constant
      const ps3Map = new Map(ps3.weights.entries());
      ps3Trainable.forEach((k, i) => ps3Map.set(k, xs[trainable.length + i]!));
      const ps3Live = ps3Trainable.length ? new Weights(ps3Map, true) : ps3.weights;
      const tuned = trunkFrom === null ? undefined : { ps3, weights: ps3Live, firstBlock: trunkFrom };
      const totals: tf.Tensor[] = [];
      for (const s of batch) {
        const r = sampleLosses(live, method, lm, ps3, tokenizer, s, ps3Live, o.boxLoss ?? 'bce', choiceWeight, tuned);
        const answer = r.answer.dataSync()[0]! / denominator;
        terms.answer += answer;
        if (s.question.target !== undefined) terms.caption += answer;
        if (r.selection) terms.selection += r.selection.dataSync()[0]! / denominator;
        if (r.choice) terms.choice += r.choice.dataSync()[0]! / denominator;
        let total = r.selection ? tf.add(r.answer, tf.mul(r.selection, o.selectionWeight)) : r.answer;
        if (r.choice) total = tf.add(total, tf.mul(r.choice, choiceWeight));
        totals.push(total);
      }
      return tf.reshape(tf.div(tf.addN(totals), denominator), []) as tf.Scalar;
    };
    return tf.valueAndGrads(f)([...trainable.map((k) => w.get(k)), ...ps3Trainable.map((k) => ps3.weights.get(k))]);
  });
  const loss = value.dataSync()[0]!;
  value.dispose();
  return {
    loss, answer: terms.answer, caption: terms.caption, selection: terms.selection, choice: terms.choice,
    grads: new Map(trainable.map((k, i) => [k, grads[i]!])),
    ps3Grads: new Map(ps3Trainable.map((k, i) => [k, grads[trainable.length + i]!])),
  };
}
