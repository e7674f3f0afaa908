/**
 * Child of `measureLoad`: loads a model folder once, every weight of the asked parts made into an
 * engine tensor (a folder's weights are otherwise read on first use, which would measure nothing),
 * and prints its memory as one JSON line.
 */
import { initEngine } from '../tensor/engine.js';
import { loadModel } from '../model/load.js';
import { countParams, paramTable, textParams, visionParams } from '../model/params.js';

const [dir, parts, backend] = process.argv.slice(2) as [string, 'all' | 'vision', string];
await initEngine({ backend });
const rssBefore = process.memoryUsage().rss;
const t0 = performance.now();
const model = loadModel(dir, parts);
const table = parts === 'all' ? paramTable(model.config) : parts === 'vision' ? visionParams(model.config) : textParams(model.config);
for (const key of table.keys()) model.weights.get(key);
const ms = performance.now() - t0;
const params = countParams(table);
process.stdout.write(`${JSON.stringify({
  backend,
  parts,
  params,
  float32_mb: (params * 4) / 2 ** 20,
  rss_before_mb: rssBefore / 2 ** 20,
  rss_peak_mb: process.resourceUsage().maxRSS / 1024,
  load_ms: ms,
})}\n`);
