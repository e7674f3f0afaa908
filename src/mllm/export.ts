/**
 * A VILA-HD checkpoint as a folder to ship: config, tokenizer and weights (in `floats`, F16 halves
 * them), the PS3 it stands on exported beside as `ps3/` when the checkpoint holds its own copy (a
 * tuned one), else named by a path relative to the new folder; no optimizer or trainer state.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensors, writeSafetensors, type FloatStorage } from '../io/safetensors.js';
import { UserError } from '../errors.js';
import { exportModel } from '../train/checkpoint.js';
import { parseVilaConfig, readVilaConfig } from './config.js';
import { ps3PathOf } from './model.js';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'];

export function exportVilaHd(from: string, out: string, floats: FloatStorage): { files: string[]; bytes: number } {
  const weightsFile = path.join(from, 'model.safetensors');
  if (!fs.existsSync(weightsFile)) throw new UserError(`${from}: no model.safetensors`);
  const config = readVilaConfig(path.join(from, 'config.json'));
  const ps3Dir = ps3PathOf(from, config);
  if (!fs.existsSync(path.join(ps3Dir, 'config.json'))) throw new UserError(`${path.join(from, 'config.json')}: field ps3_model: ${ps3Dir} is not a PS3 model folder (no config.json)`);
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
  land('model.safetensors', (tmp) => writeSafetensors(tmp, readSafetensors(weightsFile), { format: 'pt' }, floats));
  land('config.json', (tmp) => fs.writeFileSync(tmp, `${JSON.stringify(written.raw, null, 2)}\n`));
  for (const name of TOKENIZER_FILES) if (fs.existsSync(path.join(from, name))) land(name, (tmp) => fs.copyFileSync(path.join(from, name), tmp));
  return { files, bytes: files.reduce((a, f) => a + fs.statSync(path.join(out, f)).size, 0) };
}
