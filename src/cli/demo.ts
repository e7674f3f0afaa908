/**
 * `ps3 demo`: the main job on embedded defaults. Until a trained checkpoint ships, it encodes the
 * bundled 4K sample with a randomly initialised 4K-capable model, bottom-up, and writes the
 * selection heat maps and a summary — and says plainly that the weights are random.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine, tf } from '../tensor/engine.js';
import { loadPixelValues } from '../io/image.js';
import { UserError } from '../errors.js';
import { encodeImage } from '../model/encoder.js';
import { loadModel, randomModel, type PS3Model } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import { writeSelectionPictures } from '../eval/selectionPictures.js';

export const SAMPLE_IMAGE = fileURLToPath(new URL('../../../assets/sample-4k.jpg', import.meta.url));

export interface DemoOptions {
  backend?: string;
  image?: string;
  out: string;
  preset: string;
  model?: string;
  looks: string;
  seed: string;
}

function parseLooks(value: string): number | 'all' {
  if (value === 'all') return 'all';
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UserError(`--looks must be a non-negative integer or "all", got "${value}"`);
  return n;
}

export async function demoCommand(options: DemoOptions): Promise<number> {
  const backend = await initEngine(options);
  const looks = parseLooks(options.looks);
  const seed = Number(options.seed);
  if (!Number.isInteger(seed)) throw new UserError(`--seed must be an integer, got "${options.seed}"`);
  const model: PS3Model = options.model ? loadModel(options.model, 'vision') : randomModel(presetConfig(options.preset), seed);
  const random = !options.model;
  const cfg = model.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const image = options.image ?? SAMPLE_IMAGE;
  const log = (s: string): boolean => process.stdout.write(`${s}\n`);
  if (random) log(`NOTE: the weights are RANDOM (preset ${options.preset}, seed ${seed}): the heat maps show the pipeline, not learned saliency.`);
  log(`model: ${model.source}; scales ${cfg.scales.join('/')}; ${cfg.maxSelectNum} patches a look; backend ${backend}`);

  const t0 = performance.now();
  const pv = await loadPixelValues(image, { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  const t1 = performance.now();
  log(`image: ${image} (${pv.originalWidth}x${pv.originalHeight}) squashed to ${S}x${S} in ${((t1 - t0) / 1000).toFixed(2)} s`);
  const pixels = { data: pv.pixels, batch: 1, height: pv.height, width: pv.width };
  const out = await encodeImage(model.weights, model.config, pixels, { numLookClose: looks, outputHiddenStates: false });
  const t2 = performance.now();
  const tokens = out.lastHiddenState.shape[1]!;
  const chosen = out.selectionMaps.map((m) => m.data.reduce((a, v) => a + v, 0));
  log(`encoded: ${tokens} tokens (${tokens - chosen.reduce((a, c) => a + c, 0)} low-res + ${chosen.join(' + ')} high-res by scale) in ${((t2 - t1) / 1000).toFixed(2)} s`);

  fs.mkdirSync(options.out, { recursive: true });
  const files = await writeSelectionPictures(options.out, pixels, out, cfg.scales, 'bottomup', { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], prefix: 'bottomup', aspect: pv.originalWidth / pv.originalHeight });
  const summary = {
    image,
    model: model.source,
    randomWeights: random,
    backend,
    scales: cfg.scales,
    looks,
    tokens,
    highResTokensPerScale: chosen,
    seconds: { decodeAndSquash: (t1 - t0) / 1000, encode: (t2 - t1) / 1000 },
    heatmaps: files.map((f) => path.basename(f)),
  };
  fs.writeFileSync(path.join(options.out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  for (const f of files) log(`wrote ${f}`);
  log(`wrote ${path.join(options.out, 'summary.json')}`);
  tf.dispose([out.lastHiddenState, ...out.hiddenStates, ...out.selectionProbs, ...out.bottomupSelectionProbs, out.pooledOutput]);
  model.weights.dispose();
  return 0;
}
