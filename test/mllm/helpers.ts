/** Small PS3 model folders for the VILA-HD tests, and the CLI run as a user runs it. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors, type NamedArray } from '../../src/io/safetensors.js';
import { randomModel, readConfigFile } from '../../src/model/load.js';
import { newVilaConfig, randomVilaWeights, writeVilaFiles } from '../../src/mllm/model.js';
import type { EncodeMethod } from '../../src/model/baselines.js';
import { presetConfig } from '../../src/model/presets.js';

/** Writes the `micro` PS3 preset with random weights (seed) as a model folder. */
export async function writeMicroPs3(dir: string, seed = 0): Promise<string> {
  const model = randomModel(presetConfig('micro'), seed);
  const arrays = new Map<string, NamedArray>();
  for (const [k, t] of model.weights.entries()) arrays.set(k, { shape: t.shape, data: (await t.data()) as Float32Array });
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), arrays, { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(model.config.raw, null, 2)}\n`);
  model.weights.dispose();
  return dir;
}

/** A VILA-HD folder with random micro LMs for `methods` on the PS3 folder `ps3Dir` (named relative to it). */
export async function writeMicroVila(dir: string, ps3Dir: string, methods: readonly EncodeMethod[], seed = 0): Promise<string> {
  const ps3 = readConfigFile(path.join(ps3Dir, 'config.json'));
  const config = newVilaConfig({ preset: 'micro', methods, ps3Model: path.relative(dir, ps3Dir) });
  const weights = randomVilaWeights(config, ps3, methods, seed);
  fs.mkdirSync(dir, { recursive: true });
  await writeVilaFiles(dir, config, weights.entries());
  weights.dispose();
  return dir;
}

export const CLI = path.resolve('dist/src/cli/main.js');

/** `ps3 ARGS` in a child process. */
export function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 2 with one `ps3:` line matching `pattern`, and no stack trace. */
export function assertBadInput(args: string[], pattern: RegExp): void {
  const r = runCli(args);
  assert.equal(r.status, 2, `exit ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('ps3:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}
