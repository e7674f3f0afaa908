/**
 * A half-precision, sharded checkpoint loads without two full copies: a BF16 folder of the
 * b14-1.5k shapes in two shards with an index (vision tower: 121M parameters, 485 MB as
 * float32) is loaded in a fresh process, whose peak RSS must stay within the engine's own
 * footprint + the float32 size + 256 MB (a second full copy would add 485 MB).
 * `ps3 bench load --preset so400m-4k` measures the released shapes the same way.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { measureLoad, writeRandomCheckpoint } from '../../src/eval/loadMemory.js';
import { PRESETS, presetConfig } from '../../src/model/presets.js';
import { openStoredWeights } from '../../src/model/load.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-load-memory-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('a sharded BF16 checkpoint loads within its float32 size + 256 MB', async (t) => {
  const dir = path.join(tmp, 'b14-bf16');
  const written = writeRandomCheckpoint(dir, PRESETS['b14-1.5k']!.config, presetConfig('b14-1.5k'), { dtype: 'BF16', shards: 2 });
  assert.equal(written.files.length, 2);
  assert.ok(fs.existsSync(path.join(dir, 'model.safetensors.index.json')));
  const m = await measureLoad(dir, { parts: 'vision', backend: 'wasm' });
  const over = m.rss_peak_mb - m.rss_before_mb - m.float32_mb;
  t.diagnostic(`float32 ${m.float32_mb.toFixed(0)} MB, engine ${m.rss_before_mb.toFixed(0)} MB, peak ${m.rss_peak_mb.toFixed(0)} MB, load ${(m.load_ms / 1000).toFixed(1)} s`);
  assert.ok(m.float32_mb > 400, `float32 size ${m.float32_mb} MB`);
  // the weights were made (a load that reads nothing would pass the bound below)
  assert.ok(m.rss_peak_mb - m.rss_before_mb > 0.9 * m.float32_mb, `peak RSS ${m.rss_peak_mb.toFixed(0)} MB is not the engine ${m.rss_before_mb.toFixed(0)} MB + the weights' ${m.float32_mb.toFixed(0)} MB`);
  assert.ok(over < 256, `peak RSS ${m.rss_peak_mb.toFixed(0)} MB = engine ${m.rss_before_mb.toFixed(0)} + float32 ${m.float32_mb.toFixed(0)} + ${over.toFixed(0)} MB`);
});

test('a sharded index naming a key its shard lacks, or a shard key the index lacks, is refused by name', () => {
  const dir = path.join(tmp, 'micro-shards');
  writeRandomCheckpoint(dir, PRESETS['micro']!.config, presetConfig('micro'), { dtype: 'F16', shards: 2 });
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> };
  assert.equal(openStoredWeights(dir).entries.size, Object.keys(index.weight_map).length);
  const [first, second] = [...new Set(Object.values(index.weight_map))].sort();
  const key = Object.keys(index.weight_map).find((k) => index.weight_map[k] === first)!;
  fs.writeFileSync(indexFile, JSON.stringify({ weight_map: { ...index.weight_map, [key]: second } }));
  assert.throws(() => openStoredWeights(dir), new RegExp(`${second}: key "${key.replaceAll('.', '\\.')}" is in model.safetensors.index.json but not in this shard`));
  const { [key]: _dropped, ...rest } = index.weight_map;
  fs.writeFileSync(indexFile, JSON.stringify({ weight_map: rest }));
  assert.throws(() => openStoredWeights(dir), new RegExp(`key "${key.replaceAll('.', '\\.')}" is not in model.safetensors.index.json`));
});
