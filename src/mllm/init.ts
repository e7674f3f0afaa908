/**
 * `train-mllm --init DIR [--init-method M]`: a method's new run starts from the LM, projector and
 * (ps3 from ps3) prompt head another VILA-HD folder trained, instead of random weights. Fine-tuning
 * an LM to read several looks, or another method's tokens, then costs a fraction of a run from
 * scratch. The LM's shape and the tokenizer must be the same; a context of another length keeps
 * the positions both have (the rest stay as initialised).
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tensor/engine.js';
import { openSafetensors } from '../io/safetensors.js';
import type { PS3Config } from '../io/config.js';
import { UserError } from '../errors.js';
import type { EncodeMethod } from '../model/baselines.js';
import { isVilaFolder, lmConfigOf, readVilaConfig, type LmConfig, type VilaConfig } from './config.js';
import { methodParams, positionsKey } from './params.js';
import { loadLmTokenizer, newLmTokenizer } from './tokenizer.js';

export interface InitSource {
  /** a VILA-HD folder */
  readonly dir: string;
  /** whose weights in it (default the method trained) */
  readonly method: EncodeMethod;
}

const SHAPE_FIELDS: ReadonlyArray<[keyof LmConfig, string]> = [
  ['width', 'lm.width'], ['layers', 'lm.layers'], ['heads', 'lm.heads'], ['mlpHidden', 'lm.mlp_ratio'], ['vocabSize', 'lm.vocab_size'], ['tieWordEmbeddings', 'lm.tie_word_embeddings'],
];

/** Checks what `--init` names before anything expensive: the folder, its method, its LM's shape against `lm`, its projector's hidden width against `projectorHidden`. */
export function checkInitSource(source: InitSource, lm: LmConfig, projectorHidden: number): void {
  const configFile = path.join(source.dir, 'config.json');
  if (!fs.existsSync(configFile)) throw new UserError(`--init ${source.dir}: not a VILA-HD folder (no config.json)`);
  if (!isVilaFolder(source.dir)) throw new UserError(`--init ${source.dir}: not a VILA-HD folder (its config.json has no model_type "vila-hd"; a PS3 folder goes to --ps3)`);
  const theirs = readVilaConfig(configFile);
  if (!theirs.methods.includes(source.method)) throw new UserError(`--init ${source.dir}: holds no ${source.method} LM (it has ${theirs.methods.join(', ')}); name another with --init-method`);
  for (const [field, name] of SHAPE_FIELDS) {
    if (theirs.lm[field] !== lm[field]) throw new UserError(`--init ${source.dir}: field ${name} of ${configFile} is ${String(theirs.lm[field])}, the LM trained has ${String(lm[field])}`);
  }
  if (theirs.projectorHidden !== projectorHidden) throw new UserError(`--init ${source.dir}: field projector.hidden of ${configFile} is ${theirs.projectorHidden}, the LM trained has ${projectorHidden} (--projector-hidden)`);
  const ours = newLmTokenizer().vocabulary();
  const vocab = loadLmTokenizer(source.dir).vocabulary();
  const differs = vocab.size !== ours.size || [...ours].some(([w, i]) => vocab.get(w) !== i);
  if (differs) throw new UserError(`--init ${source.dir}: its tokenizer.json maps words to other ids than this version's LM tokenizer`);
}

/**
 * `method`'s weights in `fresh` (a new run's, keys prefixed by `method`) replaced by the source's
 * (keys prefixed by `source.method`); the replaced tensors are disposed. A prompt head comes only
 * from a ps3 LM; positions are copied for the shorter of the two contexts.
 */
export function initFrom(source: InitSource, method: EncodeMethod, config: VilaConfig, ps3: PS3Config, fresh: Map<string, tf.Tensor>): { copied: number } {
  checkInitSource(source, lmConfigOf(config, method), config.projectorHidden);
  const file = openSafetensors(path.join(source.dir, 'model.safetensors'));
  let copied = 0;
  for (const [key, shape] of methodParams(method, config, ps3)) {
    if (key.startsWith('ps3.prompt_head.') && source.method !== 'ps3') continue;
    const from = `${source.method}.${key.slice(method.length + 1)}`;
    const entry = file.entries.get(from);
    if (!entry) throw new UserError(`${file.where}: no key "${from}" (--init-method ${source.method})`);
    const target = fresh.get(key)!;
    let value: tf.Tensor;
    if (key === positionsKey(method)) {
      // [context, width]: the rows both contexts have
      const rows = Math.min(entry.shape[0]!, shape[0]!);
      const data = (target.dataSync() as Float32Array).slice();
      data.set(file.read(from).data.subarray(0, rows * shape[1]!));
      value = tf.tensor(data, shape);
    } else {
      if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
        throw new UserError(`${file.where}: key "${from}" has shape ${JSON.stringify(entry.shape)}, the ${method} LM needs ${JSON.stringify(shape)} (--init-method ${source.method})`);
      }
      value = tf.tensor(file.read(from).data, shape);
    }
    target.dispose();
    fresh.set(key, value);
    copied += 1;
  }
  return { copied };
}
