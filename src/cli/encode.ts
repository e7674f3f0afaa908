/**
 * `ps3 encode <image|dir> --model DIR|ORG/NAME[@REV] [--prompt TEXT] [--looks N | --tokens N | --all]
 * [--scales N] --out DIR`: features as safetensors and selection heat maps as PNGs, per image.
 * A folder is streamed with a progress bar; a bad file is reported and skipped.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine, tf } from '../tensor/engine.js';
import { loadPixelValues } from '../io/image.js';
import { writeSafetensors } from '../io/safetensors.js';
import { isUserError, UserError } from '../errors.js';
import { encodeImage } from '../model/encoder.js';
import { encodeText } from '../model/text.js';
import { writeSelectionPictures } from '../eval/selectionPictures.js';
import { disposeEncode } from '../model/region.js';
import { intOption, listImages, lookOptions, modelFrom, outputFolder, tokenizerFor } from './inputs.js';
import { imageProcessor } from '../model/load.js';
import { releaseTrunk, resolveTrunkEngine, trunkRunner, useTrunkEngine } from '../engine/trunkEngine.js';
import { checkHeapFits } from '../engine/capacity.js';
import { progressBar } from './progress.js';
import { featureArrays } from '../serve/features.js';

export interface EncodeCliOptions {
  backend?: string;
  model?: string;
  preset?: string;
  prompt?: string;
  looks?: string;
  tokens?: string;
  all?: boolean;
  scales?: string;
  out: string;
  maxPixels?: string;
  trunk?: string;
}

export async function encodeCommand(target: string, o: EncodeCliOptions): Promise<number> {
  const files = listImages(target);
  outputFolder('--out', o.out);
  const maxPixels = intOption('max-pixels', o.maxPixels, { min: 1 });
  const engine = resolveTrunkEngine(o.trunk);
  const backend = await initEngine(o);
  useTrunkEngine(engine); // the selector's convnet and any pass that names no engine follow --trunk
  const model = await modelFrom(o, o.prompt !== undefined ? 'all' : 'vision', (config, name) => checkHeapFits(config, engine, backend, name));
  const warn = (message: string): boolean => process.stderr.write(`ps3: warning: ${message}\n`);
  const looks = lookOptions(model.config.vision, o, warn);
  const cfg = model.config.vision;
  const pre = imageProcessor(model);
  const S = pre.size;
  const trunk = await trunkRunner(engine, model.weights, cfg.trunk);
  let prompt: tf.Tensor | undefined;
  if (o.prompt !== undefined) {
    if (!o.model) throw new UserError('--prompt needs --model DIR|ORG/NAME with tokenizer files');
    const tok = await tokenizerFor(model, o.model);
    const t = encodeText(model.weights, model.config.text, tok.encode([o.prompt]), 1);
    prompt = t.prompt;
    t.pooledOutput.dispose();
  }
  fs.mkdirSync(o.out, { recursive: true });
  const bar = files.length > 1 ? progressBar(files.length, 'encode') : undefined;
  const failures: string[] = [];
  let done = 0;
  for (const file of files) {
    try {
      const pv = await loadPixelValues(file, { size: S, mean: pre.mean, std: pre.std, ...(maxPixels ? { maxPixels } : {}) });
      const pixels = { data: pv.pixels, batch: 1, height: S, width: S };
      const out = await encodeImage(model.weights, model.config, pixels, { ...looks, ...(prompt ? { prompt } : {}), trunk, outputHiddenStates: false });
      const base = path.join(o.out, path.basename(file, path.extname(file)));
      writeSafetensors(`${base}.safetensors`, await featureArrays(out), { source: path.basename(file) });
      await writeSelectionPictures(o.out, pixels, out, cfg.scales, 'selection', { mean: pre.mean, std: pre.std, prefix: path.basename(base), aspect: pv.originalWidth / pv.originalHeight });
      disposeEncode(out);
      done++;
    } catch (e) {
      if (!isUserError(e)) throw e;
      failures.push(e.message);
      if (!bar) throw e;
    }
    bar?.update(done + failures.length);
  }
  bar?.stop();
  prompt?.dispose();
  await releaseTrunk(engine, model.weights);
  model.weights.dispose();
  for (const f of failures) process.stderr.write(`ps3: skipped ${f}\n`);
  process.stdout.write(`encoded ${done} of ${files.length} image(s) into ${o.out}${failures.length ? `; ${failures.length} skipped` : ''}\n`);
  return failures.length ? 2 : 0;
}
