/** Small PS3 model folders for the VILA-HD tests. */
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors, type NamedArray } from '../../src/io/safetensors.js';
import { randomModel } from '../../src/model/load.js';
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
