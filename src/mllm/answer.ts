/**
 * VILA-HD answering one question about one image:
 *
 *  1. the low-res tokens, projected, then the question (`question: Q options: ... answer:`) go
 *     through the LM; the prompt head turns the LM's state at the end of the question into PS3's
 *     top-down `prompt` (ps3 only);
 *  2. PS3 looks close with that prompt (N looks or a token budget); the low-res and chosen
 *     high-res tokens, merged and projected, are placed before the question (the baselines put
 *     their own tokens there);
 *  3. the LM answers: with options, each option's words plus [EOS] are scored by their
 *     log-likelihood after the question and the best one is the answer (ties: the lower index);
 *     without, it writes words greedily until [EOS].
 */
import { tf } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import type { Pixels, SelectionMap } from '../model/encoder.js';
import { boxGroundTruthPerScale, type LookCount } from '../model/selection.js';
import { boxTargets } from '../train/loss.js';
import type { EncodeMethod } from '../model/baselines.js';
import { disposeKv, embedTokens, lmForward, lmLogits, targetLogProbs, type LmKV } from './lm.js';
import { mergeTokens, project, promptHead } from './projector.js';
import { questionText } from './tokenizer.js';
import { baselineVisual, lowResGrid, lowResTokens, ps3Visual, type VisualTokens } from './visual.js';
import type { VilaHd } from './model.js';
import { lmConfigOf } from './config.js';

export interface AskOptions {
  /** ps3: looks (default 1) */
  readonly looks?: LookCount;
  /** ps3: a high-res token budget instead of looks */
  readonly tokens?: number;
  /** ps3: look only at the first n high-res scales (the resolution curve) */
  readonly onlySelectFirstNScale?: number;
  /** anyres/s2: resolution tiled (long side) */
  readonly resolution?: number;
  readonly tileBatch?: number;
  /** words written at most when there are no options (default 8) */
  readonly maxNewTokens?: number;
  /**
   * ps3: force this box (x0, y0, x1, y1 in the pixels' coordinates) into the first look, as the
   * training looks are (PS3's `gtSelectionMaps`) — how well the LM answers when the looks land,
   * the upper bound of top-down selection
   */
  readonly evidenceBox?: readonly [number, number, number, number];
  /**
   * ps3, with `evidenceBox`: the LM reads the low-res tokens and only the look's tokens inside the
   * box, as the captions task shows a region — whether it reads the evidence once it knows which
   * tokens are the evidence (a diagnosis, not a way to answer: the box comes from the benchmark)
   */
  readonly evidenceOnly?: boolean;
  /**
   * ps3: PS3's top-down prompt [D] to look with instead of the prompt head's — e.g. the text
   * tower's prompt of the benchmark's caption-style `prompt` field: how well the LM answers when
   * its looks are aimed as PS3's own text prompts aim them (a diagnosis of the prompt head)
   */
  readonly prompt?: Float32Array;
}

/**
 * The resolution a tiling method tiles at: the one asked for, else the one its LM was trained on
 * (config `resolutions`; at most the image's long side), else the image's long side.
 */
export function tilingResolution(model: VilaHd, method: EncodeMethod, image: { height: number; width: number }, asked?: number): number | undefined {
  if (asked !== undefined) return asked;
  const trained = model.config.resolutions[method];
  return trained === undefined ? undefined : Math.min(trained, Math.max(image.height, image.width));
}

export interface VilaAnswer {
  /** the chosen option's index, or -1 when the answer was written */
  readonly predicted: number;
  /** log-likelihood per option */
  readonly scores: number[];
  /** the answer as text */
  readonly text: string;
  /** tokens through the PS3 trunk */
  readonly trunkTokens: number;
  /** visual tokens the LM read */
  readonly visualTokens: number;
  readonly msEncode: number;
  readonly msLm: number;
  /** ps3: where it looked — per high-res scale, the prompt's probabilities and the chosen patches */
  readonly selection: { probs: Float32Array[]; maps: SelectionMap[] } | null;
}

/** Check a question before any work: not empty, only known words are not required, but it must fit the method's context. */
export function checkQuestion(model: VilaHd, method: EncodeMethod, question: string, options?: readonly string[]): Int32Array {
  if (question.trim() === '') throw new UserError('the question is empty');
  const ids = model.tokenizer.encode(questionText(question, options));
  const longest = Math.max(1, ...(options ?? []).map((o) => model.tokenizer.encode(o).length + 1));
  const visualMin = Math.ceil(lowResGrid(model.ps3) / 2) ** 2;
  const { contextLength } = lmConfigOf(model.config, method);
  const room = contextLength - visualMin - longest;
  if (ids.length > room) {
    throw new UserError(`the question (${ids.length} tokens with its options) is longer than the LM's context allows (the ${method} LM's ${contextLength} tokens, of which at least ${visualMin} visual and ${longest} for the answer)`);
  }
  for (const o of options ?? []) if (o.trim() === '') throw new UserError('an option is empty');
  return ids;
}

/** Score options (or generate) after a prefix of embeddings [P, W]. */
function respond(model: VilaHd, method: EncodeMethod, prefix: tf.Tensor, options: readonly string[] | undefined, maxNewTokens: number): { predicted: number; scores: number[]; text: string } {
  const w = model.weights;
  const p = `${method}.lm`;
  const cfg = lmConfigOf(model.config, method);
  const tok = model.tokenizer;
  const { hidden, kv } = lmForward(w, p, cfg, prefix, { keepKv: true });
  const last = tf.tidy(() => tf.slice(hidden, [hidden.shape[0]! - 1, 0], [1, -1]));
  hidden.dispose();
  try {
    if (options && options.length) {
      const scores = options.map((o) => {
        const ids = Int32Array.from([...tok.encode(o), tok.eosId]);
        const s = tf.tidy(() => {
          let rows = last;
          if (ids.length > 1) {
            const r = lmForward(w, p, cfg, embedTokens(w, p, ids.subarray(0, ids.length - 1)), { cache: kv });
            rows = tf.concat([last, r.hidden], 0);
          }
          return tf.sum(targetLogProbs(w, p, cfg, rows, ids));
        });
        const v = s.dataSync()[0]!;
        s.dispose();
        return v;
      });
      let best = 0;
      for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
      return { predicted: best, scores, text: options[best]! };
    }
    // greedy generation on the cache
    const out: number[] = [];
    let cache: LmKV[] = kv;
    let state = last;
    for (let i = 0; i < maxNewTokens; i++) {
      const next = tf.tidy(() => tf.argMax(lmLogits(w, p, cfg, state), -1));
      const id = next.dataSync()[0]!;
      next.dispose();
      if (id === tok.eosId) break;
      out.push(id);
      if (cache[0]!.k.shape[1]! + 1 > cfg.contextLength) break;
      const r = lmForward(w, p, cfg, embedTokens(w, p, Int32Array.of(id)), { cache, keepKv: true });
      if (cache !== kv) disposeKv(cache);
      cache = r.kv;
      if (state !== last) state.dispose();
      state = r.hidden;
    }
    if (cache !== kv) disposeKv(cache);
    if (state !== last) state.dispose();
    return { predicted: -1, scores: [], text: tok.decode(out) };
  } finally {
    last.dispose();
    disposeKv(kv);
  }
}

/**
 * Answer one question on one image (normalised pixels at PS3's top scale). `cached` is an earlier
 * encoding of the same image by a method that ignores the question (not ps3); the caller owns it.
 */
export async function answerQuestion(
  model: VilaHd,
  method: EncodeMethod,
  pixels: Pixels,
  question: string,
  options: readonly string[] | undefined,
  ask: AskOptions = {},
  cached?: VisualTokens,
): Promise<VilaAnswer & { visual: VisualTokens | null }> {
  if (!model.config.methods.includes(method)) throw new UserError(`${model.source}: holds no LM for method "${method}" (it has ${model.config.methods.join(', ')})`);
  if (pixels.batch !== 1) throw new UserError('answerQuestion takes one image at a time');
  const qIds = checkQuestion(model, method, question, options);
  const w = model.weights;
  const p = `${method}.lm`;
  const t0 = performance.now();
  let visual: VisualTokens;
  let selection: VilaAnswer['selection'] = null;
  let msLmPrompt = 0;
  if (method === 'ps3') {
    const given = ask.prompt;
    let prompt: tf.Tensor;
    if (given) {
      const D = model.ps3.config.vision.trunk.width;
      if (given.length !== D) throw new Error(`answerQuestion: a prompt of ${given.length} values for PS3's width ${D}`);
      prompt = tf.tensor(given, [1, D]);
    } else {
      const g0 = lowResGrid(model.ps3);
      const low = lowResTokens(model.ps3, pixels).tokens;
      const t1 = performance.now();
      prompt = tf.tidy(() => {
        const projected = project(w, 'ps3', mergeTokens(low, [{ height: g0, width: g0, offset: 0, ids: null }]));
        const { hidden } = lmForward(w, p, lmConfigOf(model.config, method), tf.concat([projected, embedTokens(w, p, qIds)], 0));
        return promptHead(w, tf.slice(hidden, [hidden.shape[0]! - 1, 0], [1, -1]));
      });
      low.dispose();
      msLmPrompt = performance.now() - t1;
    }
    const look = ask.tokens !== undefined ? { numTokenLookClose: ask.tokens } : { numLookClose: ask.looks ?? 1 };
    const gtPerScale = ask.evidenceBox ? boxGroundTruthPerScale(model.ps3.config.vision, [...ask.evidenceBox], pixels.height) : null;
    const region = gtPerScale && ask.evidenceOnly ? boxTargets(gtPerScale) : undefined;
    const r = await ps3Visual(model.ps3, pixels, { prompt, ...look, ...(gtPerScale ? { gtPerScale } : {}), ...(ask.onlySelectFirstNScale !== undefined ? { onlySelectFirstNScale: ask.onlySelectFirstNScale } : {}) }, region);
    prompt.dispose();
    const probs = await Promise.all((r.out.topdownSelectionProbs ?? r.out.selectionProbs).map(async (t) => (await t.data()) as Float32Array));
    selection = { probs, maps: r.out.selectionMaps };
    tf.dispose([r.out.lastHiddenState, ...r.out.hiddenStates, ...r.out.bottomupSelectionProbs, ...(r.out.topdownSelectionProbs ?? []), r.out.pooledOutput]);
    if (r.out.selectionProbs !== r.out.topdownSelectionProbs && r.out.selectionProbs !== r.out.bottomupSelectionProbs) tf.dispose(r.out.selectionProbs);
    visual = { merged: r.merged, trunkTokens: r.trunkTokens };
  } else {
    visual = cached ?? (await baselineVisual(model.ps3, pixels, method, { ...ask, resolution: tilingResolution(model, method, pixels, ask.resolution) }));
  }
  await visual.merged.data();
  const msEncode = performance.now() - t0 - msLmPrompt;
  const t2 = performance.now();
  const prefix = tf.tidy(() => tf.concat([project(w, method, visual.merged), embedTokens(w, p, qIds)], 0));
  let reply: ReturnType<typeof respond>;
  try {
    reply = respond(model, method, prefix, options, ask.maxNewTokens ?? 8);
  } finally {
    prefix.dispose();
  }
  const msLm = performance.now() - t2 + msLmPrompt;
  const answer = { ...reply, trunkTokens: visual.trunkTokens, visualTokens: visual.merged.shape[0]!, msEncode, msLm, selection };
  if (method === 'ps3') {
    visual.merged.dispose();
    return { ...answer, visual: null };
  }
  return { ...answer, visual };
}
