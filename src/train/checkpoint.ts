/**
 * Training checkpoints that survive a kill at any moment. `OUT/checkpoint/` is a Hugging Face
 * PS3 folder (`config.json`, `model.safetensors`, `preprocessor_config.json`, tokenizer files)
 * that `loadModel` reads like a released one and the reference's classes take as written, plus `optimizer.safetensors` and
 * `trainer_state.json` (step, data position, the run's options).
 *
 * A new checkpoint is written whole into a fresh folder, then swapped in with two renames; if
 * the process dies between them, `findCheckpoint` recovers the previous one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tensor/engine.js';
import { readSafetensors, writeSafetensors, type FloatStorage, type NamedArray } from '../io/safetensors.js';
import { officialConfigJson, openClipClean } from '../io/exportConfig.js';
import { preprocessorJson } from '../io/preprocessor.js';
import { writeTokenizerFolder } from '../io/tokenizerFolder.js';
import { UserError } from '../errors.js';
import { readConfigFile, type PS3Model } from '../model/load.js';
import type { AdamW } from './optimizer.js';

export const CHECKPOINT = 'checkpoint';
const INCOMING = '.checkpoint-incoming';
const OUTGOING = '.checkpoint-outgoing';

export interface TrainerState {
  readonly step: number;
  /** samples drawn from the data stream so far (the resume position) */
  readonly samplesSeen: number;
  readonly optimizerStep: number;
  /** the options the run was started with */
  readonly options: Record<string, unknown>;
}

async function toArrays(tensors: Iterable<[string, tf.Tensor]>): Promise<Map<string, NamedArray>> {
  const out = new Map<string, NamedArray>();
  for (const [k, t] of tensors) out.set(k, { shape: t.shape, data: (await t.data()) as Float32Array });
  return out;
}

/**
 * `extra`: more weights that are not the model's (a reading stage's head), each file name to its
 * tensors, written into the same folder so that they land with it.
 */
export async function saveCheckpoint(outDir: string, model: PS3Model, optimizer: AdamW, state: TrainerState, tokenizerDir?: string, extra: ReadonlyMap<string, Iterable<[string, tf.Tensor]>> = new Map()): Promise<string> {
  fs.mkdirSync(outDir, { recursive: true });
  const incoming = path.join(outDir, INCOMING);
  fs.rmSync(incoming, { recursive: true, force: true });
  fs.mkdirSync(incoming);
  writeSafetensors(path.join(incoming, 'model.safetensors'), await toArrays(model.weights.entries()), { format: 'pt' });
  writeSafetensors(path.join(incoming, 'optimizer.safetensors'), await toArrays(optimizer.state().entries()));
  for (const [file, tensors] of extra) writeSafetensors(path.join(incoming, file), await toArrays(tensors));
  fs.writeFileSync(path.join(incoming, 'config.json'), `${JSON.stringify(officialConfigJson(model.config), null, 2)}\n`);
  const S = model.config.vision.scales[model.config.vision.scales.length - 1]!;
  fs.writeFileSync(path.join(incoming, 'preprocessor_config.json'), `${JSON.stringify(preprocessorJson(S), null, 2)}\n`);
  const current = path.join(outDir, CHECKPOINT);
  if (tokenizerDir) {
    const { contextLength, tokenizerClean } = model.config.text;
    writeTokenizerFolder(tokenizerDir, incoming, { contextLength, clean: openClipClean(tokenizerClean), folder: current });
  }
  fs.writeFileSync(path.join(incoming, 'trainer_state.json'), `${JSON.stringify(state, null, 2)}\n`);
  const outgoing = path.join(outDir, OUTGOING);
  fs.rmSync(outgoing, { recursive: true, force: true });
  if (fs.existsSync(current)) fs.renameSync(current, outgoing);
  fs.renameSync(incoming, current);
  fs.rmSync(outgoing, { recursive: true, force: true });
  return current;
}

/** The last complete checkpoint under `outDir`, recovering from a kill mid-swap; null if none. */
export function findCheckpoint(outDir: string): string | null {
  const current = path.join(outDir, CHECKPOINT);
  const outgoing = path.join(outDir, OUTGOING);
  if (!fs.existsSync(current) && fs.existsSync(outgoing)) fs.renameSync(outgoing, current);
  return fs.existsSync(path.join(current, 'trainer_state.json')) ? current : null;
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, 'trainer_state.json');
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as TrainerState;
    if (!Number.isInteger(s.step) || !Number.isInteger(s.samplesSeen)) throw new Error('step or samplesSeen missing');
    return s;
  } catch (e) {
    throw new UserError(`${file}: not a readable trainer state (${(e as Error).message})`);
  }
}

export function readOptimizerState(dir: string): Map<string, tf.Tensor> {
  const arrays = readSafetensors(path.join(dir, 'optimizer.safetensors'));
  return new Map([...arrays].map(([k, a]) => [k, tf.tensor(a.data, [...a.shape])]));
}

/** The files of a model folder copied as they are (the tokenizer's are rewritten to name their new folder). */
const MODEL_FILES = ['config.json', 'preprocessor_config.json'];

/**
 * A checkpoint (or any model folder) as a model folder to ship: config and preprocessor copied,
 * the tokenizer files rewritten so `tokenizer_config.json` names `out` (as given: a relative path
 * stays relative), the weights rewritten with floats in `floats` (F16 halves the size), the
 * optimizer and trainer state left out. Files already in `out` that are not model files (notes,
 * metrics) stay; copied files land whole (temporary name, then rename).
 */
export function exportModel(from: string, out: string, floats: FloatStorage): { files: string[]; bytes: number } {
  const weightsFile = path.join(from, 'model.safetensors');
  if (!fs.existsSync(path.join(from, 'config.json')) || !fs.existsSync(weightsFile)) throw new UserError(`${from}: not a model folder (config.json and model.safetensors expected)`);
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new UserError(`--out ${out}: exists and is not a folder`);
  const config = readConfigFile(path.join(from, 'config.json'));
  const weights = readSafetensors(weightsFile);
  fs.mkdirSync(out, { recursive: true });
  const files: string[] = [];
  for (const name of MODEL_FILES) {
    const src = path.join(from, name);
    if (!fs.existsSync(src)) continue;
    const tmp = path.join(out, `.${name}.${process.pid}.tmp`);
    fs.copyFileSync(src, tmp);
    fs.renameSync(tmp, path.join(out, name));
    files.push(name);
  }
  const { contextLength, tokenizerClean } = config.text;
  writeTokenizerFolder(from, out, { contextLength, clean: openClipClean(tokenizerClean), folder: out });
  for (const name of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) if (fs.existsSync(path.join(from, name)) && fs.existsSync(path.join(out, name))) files.push(name);
  writeSafetensors(path.join(out, 'model.safetensors'), weights, { format: 'pt' }, floats);
  files.push('model.safetensors');
  return { files, bytes: files.reduce((a, f) => a + fs.statSync(path.join(out, f)).size, 0) };
}
