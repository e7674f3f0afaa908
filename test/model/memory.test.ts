/**
 * Memory stays flat: encoding 1,000 images in one process (decode, squash, encode bottom-up and
 * top-down, write nothing) leaves the engine with the tensors it started with.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { loadPixelValues } from '../../src/io/image.js';
import { randomModel } from '../../src/model/load.js';
import { PRESETS } from '../../src/model/presets.js';
import { parseConfig } from '../../src/io/config.js';
import { disposeEncode, encodeRegion, textFeatures } from '../../src/model/region.js';

await initEngine();

test('1,000 encodes leave no tensor behind', async () => {
  // the micro preset without the shallow convnet, whose fixed 1512-px input would make this test
  // take minutes; the convnet's own disposal is covered by test/model/encoder.test.ts
  const raw = structuredClone(PRESETS['micro']!.config) as { vision_config: Record<string, unknown> };
  raw.vision_config['highres_selection_feature'] = false;
  const model = randomModel(parseConfig(raw), 0);
  const S = model.config.vision.scales.at(-1)!;
  const images = await Promise.all(
    [0, 1, 2, 3].map((i) =>
      sharp({ create: { width: 300 + 20 * i, height: 200, channels: 3, background: { r: 40 * i, g: 120, b: 200 - 30 * i } } })
        .png()
        .toBuffer(),
    ),
  );
  const ids = new Int32Array(model.config.text.contextLength).fill(3);
  const encodeOnce = async (i: number): Promise<void> => {
    const pv = await loadPixelValues(images[i % images.length]!, { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    const pixels = { data: pv.pixels, batch: 1, height: S, width: S };
    const text = i % 2 ? textFeatures(model, ids, 1) : undefined;
    const { out, region } = await encodeRegion(model, pixels, text?.prompts, { numLookClose: 1 + (i % 3) });
    await region.data();
    disposeEncode(out);
    tf.dispose([region, ...(text ? [text.features, text.prompts] : [])]);
  };
  // the first encodes fill the cache of transposed weights: count from after them
  for (let i = 0; i < 4; i++) await encodeOnce(i);
  const before = tf.memory();
  const rssBefore = process.memoryUsage().rss;
  for (let i = 0; i < 1000; i++) await encodeOnce(i);
  const after = tf.memory();
  assert.equal(after.numTensors, before.numTensors, `live tensors grew from ${before.numTensors} to ${after.numTensors}`);
  assert.equal(after.numBytes, before.numBytes);
  // the process itself does not keep growing either (generous bound: allocator noise)
  const grownMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
  assert.ok(grownMb < 300, `RSS grew by ${grownMb.toFixed(0)} MB over 1,000 encodes`);
  model.weights.dispose();
});
