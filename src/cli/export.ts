/**
 * `ps3 export <checkpoint> --out DIR [--dtype f16|f32]`: a training checkpoint as a model folder
 * to ship or share — model files only, weights in half precision by default. A VILA-HD
 * checkpoint is exported with its PS3 (`ps3/`) when it holds its own copy; `--add CHECKPOINT`
 * (repeatable) joins the methods of VILA-HD checkpoints trained in other runs.
 */
import path from 'node:path';
import { UserError } from '../errors.js';
import { exportModel } from '../train/checkpoint.js';
import { isVilaFolder } from '../mllm/config.js';
import { exportVilaHd } from '../mllm/export.js';

export interface ExportCliOptions {
  out?: string;
  dtype?: string;
  add?: string[];
  replace?: boolean;
}

export function exportCommand(from: string, o: ExportCliOptions): number {
  if (!o.out) throw new UserError('--out DIR is required');
  const dtype = (o.dtype ?? 'f16').toLowerCase();
  if (dtype !== 'f16' && dtype !== 'f32') throw new UserError(`--dtype must be f16 or f32, got "${o.dtype}"`);
  if (path.resolve(from) === path.resolve(o.out)) throw new UserError('--out must be another folder than the checkpoint');
  const floats = dtype === 'f16' ? 'F16' : 'F32';
  const add = o.add ?? [];
  if (o.replace && !add.length) throw new UserError('--replace: give --add CHECKPOINT (whose methods replace the folder\'s)');
  if (add.length && !isVilaFolder(from)) throw new UserError(`--add joins VILA-HD methods, and ${from} is not a VILA-HD folder`);
  for (const other of add) if (!isVilaFolder(other)) throw new UserError(`--add ${other}: not a VILA-HD folder`);
  const { files, bytes } = isVilaFolder(from) ? exportVilaHd(from, o.out, floats, add, o.replace ?? false) : exportModel(from, o.out, floats);
  process.stdout.write(`wrote ${files.join(', ')} to ${o.out} (${(bytes / 1048576).toFixed(1)} MB, weights ${dtype})\n`);
  return 0;
}
