/**
 * A VILA-HD checkpoint as a folder to ship: config, tokenizer and weights (in `floats`, F16 halves
 * them), the PS3 it stands on exported beside as `ps3/` when the checkpoint holds its own copy (a
 * tuned one), else named by a path relative to the new folder; no optimizer or trainer state.
 *
 * `add`: other VILA-HD checkpoints whose methods join the folder (methods trained in parallel runs,
 * one per process or machine). They must share the LM's shape and tokenizer, hold none of the
 * same methods, and stand on the same PS3 trunk (the selection modules may differ: only `ps3`
 * selects, and its LM comes from `from`). Context lengths may differ: each joining method keeps
 * its own (as `context_lengths.METHOD` where it is not the folder's).
 */
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensors, writeSafetensors, type FloatStorage } from '../io/safetensors.js';
import { UserError } from '../errors.js';
import { exportModel } from '../train/checkpoint.js';
import { SELECTION_MODULES } from '../train/trainer.js';
import { lmConfigOf, longestContext, parseVilaConfig, readVilaConfig, withContextLength, withResolution, type VilaConfig } from './config.js';
import { ps3PathOf, withMethods } from './model.js';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'];

function checkpointParts(dir: string): { config: VilaConfig; weightsFile: string; ps3Dir: string } {
  const weightsFile = path.join(dir, 'model.safetensors');
  if (!fs.existsSync(weightsFile)) throw new UserError(`${dir}: no model.safetensors`);
  const config = readVilaConfig(path.join(dir, 'config.json'));
  const ps3Dir = ps3PathOf(dir, config);
  if (!fs.existsSync(path.join(ps3Dir, 'config.json'))) throw new UserError(`${path.join(dir, 'config.json')}: field ps3_model: ${ps3Dir} is not a PS3 model folder (no config.json)`);
  return { config, weightsFile, ps3Dir };
}

/** The LM's shape, which every method shares (the context length is each method's own). */
function lmShape(config: VilaConfig): string {
  return JSON.stringify({ ...config.lm, contextLength: null });
}

/** A `tokenizer_config.json`'s text with `model_max_length` at least `n` (the longest context of the methods that joined). */
function withMaxLength(text: string, n: number, file: string): string {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const now = json['model_max_length'];
  return typeof now === 'number' && now < n ? `${JSON.stringify({ ...json, model_max_length: n }, null, 2)}\n` : text;
}

const isSelection = (k: string): boolean => SELECTION_MODULES.some((m) => k.startsWith(m));

/**
 * The first vision weight of the trunk (or, `selection`, of the selection modules) that differs
 * between two PS3 folders, or null (the text tower does not make tokens).
 */
function visionDifference(a: string, b: string, selection = false): string | null {
  if (path.resolve(a) === path.resolve(b)) return null;
  const wa = readSafetensors(path.join(a, 'model.safetensors'));
  const wb = readSafetensors(path.join(b, 'model.safetensors'));
  for (const [k, x] of wa) {
    if (!k.startsWith('vision_model.') || isSelection(k) !== selection) continue;
    const y = wb.get(k);
    if (!y || y.data.length !== x.data.length || y.data.some((v, i) => v !== x.data[i])) return k;
  }
  return null;
}

/**
 * `replace`: a method an `add` checkpoint holds replaces the one already in the folder (a method
 * retrained, say) instead of being refused; the weights of the method replaced are all dropped.
 */
export function exportVilaHd(from: string, out: string, floats: FloatStorage, add: readonly string[] = [], replace = false): { files: string[]; bytes: number } {
  const { config: own, weightsFile, ps3Dir } = checkpointParts(from);
  let config = own;
  const weights = readSafetensors(weightsFile);
  const tokenizer = fs.existsSync(path.join(from, 'tokenizer.json')) ? fs.readFileSync(path.join(from, 'tokenizer.json'), 'utf8') : null;
  for (const other of add) {
    const part = checkpointParts(other);
    const shared = part.config.methods.filter((m) => config.methods.includes(m));
    if (shared.length && !replace) throw new UserError(`--add ${other}: method ${shared.join(', ')} is already in the folder (--replace to take ${other}'s)`);
    for (const m of shared) for (const k of [...weights.keys()]) if (k.startsWith(`${m}.`)) weights.delete(k);
    if (lmShape(part.config) !== lmShape(config)) throw new UserError(`--add ${other}: its LM (field lm) differs from ${from}'s`);
    if (part.config.projectorHidden !== config.projectorHidden) throw new UserError(`--add ${other}: its projector.hidden ${part.config.projectorHidden} differs from ${from}'s ${config.projectorHidden}`);
    if (part.config.methods.includes('ps3') && part.config.promptHidden !== config.promptHidden) throw new UserError(`--add ${other}: its prompt_head.hidden ${part.config.promptHidden} differs from ${from}'s ${config.promptHidden}`);
    const theirs = fs.existsSync(path.join(other, 'tokenizer.json')) ? fs.readFileSync(path.join(other, 'tokenizer.json'), 'utf8') : null;
    if (theirs !== tokenizer) throw new UserError(`--add ${other}: its tokenizer.json differs from ${from}'s`);
    const differs = visionDifference(ps3Dir, part.ps3Dir);
    if (differs) throw new UserError(`--add ${other}: it stands on another PS3 (weight "${differs}" differs from ${ps3Dir}'s)`);
    // the folder keeps the first PS3: a ps3 LM taken from another checkpoint must select with the same modules
    const selects = shared.includes('ps3') ? visionDifference(ps3Dir, part.ps3Dir, true) : null;
    if (selects) throw new UserError(`--add ${other} --replace: its ps3 LM selects with other PS3 selection modules (weight "${selects}" differs from ${ps3Dir}'s); export it first and --add the rest to it`);
    for (const [k, a] of readSafetensors(part.weightsFile)) if (part.config.methods.some((m) => k.startsWith(`${m}.`))) weights.set(k, a);
    config = withMethods(config, [...config.methods, ...part.config.methods]);
    for (const m of part.config.methods) {
      config = withContextLength(config, m, lmConfigOf(part.config, m).contextLength);
      const px = part.config.resolutions[m];
      if (px !== undefined) config = withResolution(config, m, px);
    }
  }
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new UserError(`--out ${out}: exists and is not a folder`);
  fs.mkdirSync(out, { recursive: true });
  const embedded = config.ps3Model === 'ps3';
  const files: string[] = [];
  if (embedded) files.push(...exportModel(ps3Dir, path.join(out, 'ps3'), floats).files.map((f) => path.join('ps3', f)));
  const ps3Model = embedded ? 'ps3' : path.relative(path.resolve(out), ps3Dir) || '.';
  const written = parseVilaConfig({ ...config.raw, ps3_model: ps3Model }, 'VILA-HD config');
  const land = (name: string, write: (tmp: string) => void): void => {
    const tmp = path.join(out, `.${name}.${process.pid}.tmp`);
    write(tmp);
    fs.renameSync(tmp, path.join(out, name));
    files.push(name);
  };
  land('model.safetensors', (tmp) => writeSafetensors(tmp, weights, { format: 'pt' }, floats));
  land('config.json', (tmp) => fs.writeFileSync(tmp, `${JSON.stringify(written.raw, null, 2)}\n`));
  for (const name of TOKENIZER_FILES) {
    const src = path.join(from, name);
    if (!fs.existsSync(src)) continue;
    const text = fs.readFileSync(src, 'utf8');
    land(name, (tmp) => fs.writeFileSync(tmp, name === 'tokenizer_config.json' ? withMaxLength(text, longestContext(written), src) : text));
  }
  return { files, bytes: files.reduce((a, f) => a + fs.statSync(path.join(out, f)).size, 0) };
}
