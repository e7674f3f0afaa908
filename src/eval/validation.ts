/**
 * A small held-out check of a model while it trains: selection recall (does it look where it
 * should?) and local retrieval, PS3 against low-res (does what it sees match the text?). Scenes
 * come from a validation seed range of their own, apart from the evaluation's default seeds, so
 * watching these numbers while choosing a recipe never tunes on the reported evaluation.
 */
import type { TextTokenizer } from '../io/tokenizer.js';
import type { PS3Model } from '../model/load.js';
import { VALIDATION_SEED } from '../data/qa/generate.js';
import { evaluateRetrieval, retrievalTasks, synthRetrievalImages } from './retrieval.js';
import { evaluateSelection } from './selectionRecall.js';

export { VALIDATION_SEED };

export interface ValidationOptions {
  /** scenes for selection recall; retrieval asks 2 triples of each */
  readonly scenes: number;
  readonly candidates?: number;
  readonly seed?: number;
}

export async function validate(model: PS3Model, tokenizer: TextTokenizer, o: ValidationOptions): Promise<Record<`val_${string}`, number | null>> {
  const S = model.config.vision.scales[model.config.vision.scales.length - 1]!;
  const images = synthRetrievalImages(o.seed ?? VALIDATION_SEED, o.scenes, S, S);
  const { report } = await evaluateSelection(model, tokenizer, images, { looks: 1 });
  const tasks = retrievalTasks(images, { count: 2 * o.scenes, candidates: o.candidates ?? 8, perImage: 2, seed: 0 });
  const ps3 = await evaluateRetrieval(model, tokenizer, images, tasks, { method: 'ps3' });
  const lowres = await evaluateRetrieval(model, tokenizer, images, tasks, { method: 'lowres' });
  return {
    val_topdown_recall: report.topdown.recall,
    val_bottomup_recall: report.bottomup.recall,
    val_random_recall: report.random.recall,
    // near 1: every caption gets the same prompt, and top-down selection is the bottom-up one
    val_prompt_cosine: report.prompts.between_captions,
    val_retrieval_ps3: ps3.accuracy,
    val_retrieval_lowres: lowres.accuracy,
  };
}
