/**
 * `ps3 encode <image|dir> --model DIR [--prompt TEXT] [--looks N | --tokens N | --all]
 * [--scales N] --out DIR`: features as safetensors and selection heat maps as PNGs, per image.
 * A folder is streamed with a progress bar; a bad file is reported and skipped.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine, tf } from '../tensor/engine.js';
import { loadPixelValues } from '../io/image.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { writeSafetensors, type NamedArray } from '../io/safetensors.js';
import { isUserError, UserError } from '../errors.js';
import { encodeImage, type EncodeOutput } from '../model/encoder.js';
import { encodeText } from '../model/text.js';
import { writeSelectionPictures } from '../eval/selectionPictures.js';
import { disposeEncode } from '../eval/region.js';
import { listImages, lookOptions, modelFrom, positiveInt } from './inputs.js';
import { releaseTrunk, resolveTrunkEngine, trunkRunner, useTrunkEngine } from '../engine/trunkEngine.js';
import { checkHeapFits } from '../engine/capacity.js';
import { progressBar } from './progress.js';

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

async function features(out: EncodeOutput): Promise<Map<string, NamedArray>> {
  const m = new Map<string, NamedArray>();
  const add = async (name: string, t: tf.Tensor): Promise<void> => void m.set(name, { shape: t.shape, data: (await t.data()) as Float32Array });
  await add('last_hidden_state', out.lastHiddenState);
  await add('pooled_output', out.pooledOutput);
  for (const [i, p] of out.selectionProbs.entries()) await add(`selection_probs.${i}`, p);
  for (const [i, p] of out.bottomupSelectionProbs.entries()) await add(`bottomup_selection_probs.${i}`, p);
  if (out.topdownSelectionProbs) for (const [i, p] of out.topdownSelectionProbs.entries()) await add(`topdown_selection_probs.${i}`, p);
  out.selectionMaps.forEach((s, i) => m.set(`selection_maps.${i}`, { shape: [1, s.height, s.width], data: Int32Array.from(s.data) }));
  return m;
}

export async function encodeCommand(target: string, o: EncodeCliOptions): Promise<number> {
  const backend = await initEngine(o);
  const files = listImages(target);
  const maxPixels = positiveInt('max-pixels', o.maxPixels);
  const engine = resolveTrunkEngine(o.trunk);
  useTrunkEngine(engine); // the selector's convnet and any pass that names no engine follow --trunk
  const model = modelFrom(o, o.prompt !== undefined ? 'all' : 'vision', (config, name) => checkHeapFits(config, engine, backend, name));
  const warn = (message: string): boolean => process.stderr.write(`ps3: warning: ${message}\n`);
  const looks = lookOptions(model.config.vision, o, warn);
  const cfg = model.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const trunk = await trunkRunner(engine, model.weights, cfg.trunk);
  let prompt: tf.Tensor | undefined;
  if (o.prompt !== undefined) {
    if (!o.model) throw new UserError('--prompt needs --model DIR with tokenizer files');
    const tok = await loadTokenizer(o.model, { contextLength: model.config.text.contextLength, clean: model.config.text.tokenizerClean, padId: model.config.text.padId });
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
      const pv = await loadPixelValues(file, { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], ...(maxPixels ? { maxPixels } : {}) });
      const pixels = { data: pv.pixels, batch: 1, height: S, width: S };
      const out = await encodeImage(model.weights, model.config, pixels, { ...looks, ...(prompt ? { prompt } : {}), trunk, outputHiddenStates: false });
      const base = path.join(o.out, path.basename(file, path.extname(file)));
      writeSafetensors(`${base}.safetensors`, await features(out), { source: path.basename(file) });
      await writeSelectionPictures(o.out, pixels, out, cfg.scales, 'selection', { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], prefix: path.basename(base), aspect: pv.originalWidth / pv.originalHeight });
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
