/**
 * `ps3 similarity <image> --model DIR --text T [--text T ...]`: for each text, top-down selection
 * with its prompt, a score (cosine and SigLIP probability of the pooled chosen tokens against
 * the text), and a PNG of where it looked.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine, tf } from '../tensor/engine.js';
import { loadPixelValues } from '../io/image.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { UserError } from '../errors.js';
import { writeSelectionPictures } from '../eval/selectionPictures.js';
import { disposeEncode, encodeRegion, logitParams, scoreOf, textFeatures } from '../eval/region.js';
import { lookOptions, modelFrom } from './inputs.js';
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
  const backend = await initEngine(o);
  if (!o.model) throw new UserError('--model DIR is required (a PS3 folder with tokenizer files)');
  if (!o.text?.length) throw new UserError('give at least one --text');
  const engine = resolveTrunkEngine(o.trunk);
  useTrunkEngine(engine); // the selector's convnet and any pass that names no engine follow --trunk
  const model = modelFrom(o, 'all', (config, name) => checkHeapFits(config, engine, backend, name));
  const cfg = model.config.vision;
  const looks = lookOptions(cfg, o, (m) => process.stderr.write(`ps3: warning: ${m}\n`));
  const trunk = await trunkRunner(engine, model.weights, cfg.trunk);
  const tok = await loadTokenizer(o.model, { contextLength: model.config.text.contextLength, clean: model.config.text.tokenizerClean, padId: model.config.text.padId });
  const S = cfg.scales[cfg.scales.length - 1]!;
  const pv = await loadPixelValues(image, { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  const pixels = { data: pv.pixels, batch: 1, height: S, width: S };
  const { features, prompts } = textFeatures(model, tok.encode(o.text), o.text.length);
  const params = logitParams(model);
  fs.mkdirSync(o.out, { recursive: true });
  const rows: Array<{ text: string; cosine: number; probability: number; picture: string[] }> = [];
  for (const [i, text] of o.text.entries()) {
    const prompt = tf.slice(prompts, [i, 0], [1, -1]);
    const { out, region } = await encodeRegion(model, pixels, prompt, { ...looks, trunk });
    const cosine = tf.tidy(() => tf.sum(tf.mul(region, tf.slice(features, [i, 0], [1, -1])))).dataSync()[0]!;
    const picture = await writeSelectionPictures(o.out, pixels, out, cfg.scales, 'topdown', { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], prefix: `text${i}`, aspect: pv.originalWidth / pv.originalHeight });
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
