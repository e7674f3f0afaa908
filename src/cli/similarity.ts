/**
 * `ps3 similarity <image> --model DIR|ORG/NAME[@REV] --text T [--text T ...]`: for each text, top-down selection
 * with its prompt, a score (cosine and SigLIP probability of the pooled chosen tokens against
 * the text), and a PNG of where it looked.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine, tf } from '../tensor/engine.js';
import { loadPixelValues } from '../io/image.js';
import { UserError } from '../errors.js';
import { writeSelectionPictures } from '../eval/selectionPictures.js';
import { disposeEncode, encodeRegion, logitParams, scoreOf, textFeatures } from '../model/region.js';
import { inputImage, lookOptions, modelFrom, outputFolder, tokenizerFor } from './inputs.js';
import { imageProcessor } from '../model/load.js';
import { releaseTrunk, resolveTrunkEngine, trunkRunner, useTrunkEngine } from '../engine/trunkEngine.js';
import { checkHeapFits } from '../engine/capacity.js';

export interface SimilarityCliOptions {
  backend?: string;
  model?: string;
  text: string[];
  looks?: string;
  tokens?: string;
  all?: boolean;
  out: string;
  json?: boolean;
  trunk?: string;
}

export async function similarityCommand(image: string, o: SimilarityCliOptions): Promise<number> {
  if (!o.model) throw new UserError('--model DIR|ORG/NAME is required (a PS3 model with tokenizer files)');
  if (!o.text?.length) throw new UserError('give at least one --text');
  if (o.text.some((t) => t.trim() === '')) throw new UserError('--text must not be empty');
  await inputImage('<image>', image);
  outputFolder('--out', o.out);
  const engine = resolveTrunkEngine(o.trunk);
  const backend = await initEngine(o);
  useTrunkEngine(engine); // the selector's convnet and any pass that names no engine follow --trunk
  const model = await modelFrom(o, 'all', (config, name) => checkHeapFits(config, engine, backend, name));
  const cfg = model.config.vision;
  const looks = lookOptions(cfg, o, (m) => process.stderr.write(`ps3: warning: ${m}\n`));
  const trunk = await trunkRunner(engine, model.weights, cfg.trunk);
  const tok = await tokenizerFor(model, o.model);
  const pre = imageProcessor(model);
  const S = pre.size;
  const pv = await loadPixelValues(image, { size: S, mean: pre.mean, std: pre.std });
  const pixels = { data: pv.pixels, batch: 1, height: S, width: S };
  const { features, prompts } = textFeatures(model, tok.encode(o.text), o.text.length);
  const params = logitParams(model);
  fs.mkdirSync(o.out, { recursive: true });
  const rows: Array<{ text: string; cosine: number; probability: number; picture: string[] }> = [];
  for (const [i, text] of o.text.entries()) {
    const prompt = tf.slice(prompts, [i, 0], [1, -1]);
    const { out, region } = await encodeRegion(model, pixels, prompt, { ...looks, trunk });
    const cosine = tf.tidy(() => tf.sum(tf.mul(region, tf.slice(features, [i, 0], [1, -1])))).dataSync()[0]!;
    const picture = await writeSelectionPictures(o.out, pixels, out, cfg.scales, 'topdown', { mean: pre.mean, std: pre.std, prefix: `text${i}`, aspect: pv.originalWidth / pv.originalHeight });
    rows.push({ text, ...scoreOf(cosine, params), picture: picture.map((p) => path.basename(p)) });
    disposeEncode(out);
    tf.dispose([prompt, region]);
  }
  tf.dispose([features, prompts]);
  await releaseTrunk(engine, model.weights);
  model.weights.dispose();
  fs.writeFileSync(path.join(o.out, 'similarity.json'), `${JSON.stringify({ image, results: rows }, null, 2)}\n`);
  if (o.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
  else for (const r of rows) process.stdout.write(`${r.probability.toFixed(4)}  cos ${r.cosine.toFixed(4)}  ${r.text}\n`);
  return 0;
}
