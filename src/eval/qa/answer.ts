/**
 * Answering a multiple-choice question with the encoder alone — no language model — the CLIP
 * way, on top of PS3's top-down selection:
 *
 *  1. What to look for: the item's `prompt` (a caption-style "a red sign", written by the
 *     generator without the answer) or, without hints, the question itself → text tower →
 *     `prompt` [1, D]. Only `ps3` uses it: it drives the top-down selection of high-res patches.
 *  2. The image → the method's pooled feature v [1, D] (`encodeWith`: PS3's chosen high-res
 *     tokens MAP-pooled; the baselines pool their own tokens; see src/model/baselines.ts).
 *  3. Each option → a statement: the item's `statements[k]` (a caption-style sentence for that
 *     option, e.g. "a red sign reading K3") or, without hints, `question + ' ' + option` → text
 *     tower → L2-normalised text feature t_k.
 *  4. score_k = cos(v, t_k); the answer is the argmax (ties: the lower index).
 *
 * The statements are what the question says with the option filled in; they use the words of
 * the captions the model was trained on, which is why the generator writes them (a real 4KPro
 * question would be turned into statements by a template per category or a language model).
 */
import { tf } from '../../tensor/engine.js';
import type { TextTokenizer } from '../../io/tokenizer.js';
import type { Pixels } from '../../model/encoder.js';
import type { PS3Model } from '../../model/load.js';
import { textFeatures } from '../../model/region.js';
import { encodeWith, type EncodeMethod, type MethodEncoding, type MethodOptions } from '../../model/baselines.js';
import type { BenchItemJson } from './format.js';

export interface AnswerText {
  /** what PS3 looks for (top-down prompt text) */
  readonly prompt: string;
  /** one statement per option */
  readonly statements: string[];
}

/** The prompt and statements of an item: its hints, or the question and question + option. */
export function answerText(item: Pick<BenchItemJson, 'question' | 'options' | 'prompt' | 'statements'>, hints = true): AnswerText {
  return {
    prompt: hints && item.prompt ? item.prompt : item.question,
    statements: hints && item.statements ? [...item.statements] : item.options.map((o) => `${item.question} ${o}`),
  };
}

export interface Answer {
  readonly predicted: number;
  /** cosine per option */
  readonly scores: number[];
  readonly tokens: number;
  readonly tiles: number;
  /** encoding time (for a cached encoding, the time it took when it was made) */
  readonly msEncode: number;
  /** tokenizing and the text tower */
  readonly msText: number;
}

export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/**
 * Answer one question. `cached` is an earlier encoding of the same image by a method that does
 * not depend on the question (everything but `ps3`); it is used instead of encoding again and
 * its time is charged to this question too. Returns the answer and the encoding (the caller
 * keeps or disposes its feature).
 */
export async function answerQuestion(
  model: PS3Model,
  tokenizer: TextTokenizer,
  pixels: Pixels,
  item: Pick<BenchItemJson, 'question' | 'options' | 'prompt' | 'statements'>,
  method: EncodeMethod,
  options: MethodOptions & { hints?: boolean } = {},
  cached?: MethodEncoding,
): Promise<{ answer: Answer; encoding: MethodEncoding }> {
  const text = answerText(item, options.hints ?? true);
  const usePrompt = method === 'ps3';
  const t0 = performance.now();
  const texts = usePrompt ? [text.prompt, ...text.statements] : text.statements;
  const { features, prompts } = textFeatures(model, tokenizer.encode(texts), texts.length);
  const statementFeatures = usePrompt ? tf.slice(features, [1, 0], [-1, -1]) : features;
  const prompt = usePrompt ? tf.slice(prompts, [0, 0], [1, -1]) : undefined;
  await statementFeatures.data();
  const msText = performance.now() - t0;
  try {
    const encoding = cached ?? (await encodeWith(model, pixels, method, { ...options, ...(prompt ? { prompt } : {}) }));
    const scored = tf.tidy(() => tf.reshape(tf.matMul(statementFeatures, encoding.feature, false, true), [-1]));
    const scores = Array.from(scored.dataSync());
    scored.dispose();
    return {
      answer: { predicted: argmax(scores), scores, tokens: encoding.tokens, tiles: encoding.tiles, msEncode: encoding.ms, msText },
      encoding,
    };
  } finally {
    try {
      tf.dispose([...new Set([features, prompts, statementFeatures, ...(prompt ? [prompt] : [])])]);
    } catch {
      // after a WASM abort (out of memory) the engine cannot free anything; the caller reports it
    }
  }
}
