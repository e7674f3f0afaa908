/**
 * src/eval/cost.ts: configs built per resolution, analytic token counts, a report with every
 * field for every (resolution, method), the child-process path, and the plots.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { isUserError } from '../../src/errors.js';
import { presetConfig } from '../../src/model/presets.js';
import { configAtResolution, COST_METHODS, costCounts, costReport, denseCounts, formatCostTable, measureCostIsolated, writeCostPlots } from '../../src/eval/cost.js';
import { tinyConfig } from './tinyConfig.js';


test('configs per resolution: scales below R then R; bad resolutions refused', () => {
  const c = presetConfig('tiny-4k');
  assert.deepEqual(configAtResolution(c, 756).vision.scales, [378, 756]);
  assert.deepEqual(configAtResolution(c, 3780).vision.scales, [378, 756, 1512, 3780]);
  assert.deepEqual(configAtResolution(c, 7560).vision.scales, [378, 756, 1512, 3780, 7560]);
  assert.throws(() => configAtResolution(c, 1000), (e: unknown) => isUserError(e));
  assert.throws(() => configAtResolution(c, 378), (e: unknown) => isUserError(e));
  // analytic counts at 4K: 729 low-res tokens, one 640-patch look, 100 AnyRes tiles + global, 121 S² tiles
  const at4k = configAtResolution(c, 3780);
  assert.equal(costCounts(at4k, 'lowres', 1).tokens, 729);
  assert.equal(costCounts(at4k, 'ps3', 1).tokens, 729 + 640);
  assert.equal(costCounts(at4k, 'anyres', 1).tokens, 101 * 729);
  assert.equal(costCounts(at4k, 's2', 1).tokens, 121 * 729);
  assert.equal(denseCounts(at4k, 3780).tokens, 270 * 270);
  assert.ok(costCounts(at4k, 'ps3', 1).gflop < costCounts(at4k, 's2', 1).gflop);
});

test('the report: every field for every (resolution, method), dense rows, table and plots', async () => {
  const report = await costReport({ config: tinyConfig(), model: 'tiny-test', resolutions: [224, 112], methods: COST_METHODS, isolate: false });
  assert.deepEqual(report.resolutions, [112, 224]);
  assert.equal(report.rows.length, 2 * COST_METHODS.length);
  assert.equal(report.pretrain_batch, 2);
  const json = JSON.parse(JSON.stringify(report));
  for (const key of ['model', 'looks', 'pretrain_batch', 'resolutions', 'rows', 'dense', 'machine', 'notes']) assert.ok(key in json, key);
  for (const row of json.rows) {
    for (const key of ['resolution', 'method', 'status', 'scales', 'tokens', 'tiles', 'gflop', 'ms', 'ms_runs', 'estimated_peak_mb', 'weights_mb', 'rss_peak_mb', 'error']) assert.ok(key in row, `${row.method}: ${key}`);
    assert.equal(row.status, 'ok', `${row.resolution} ${row.method}: ${row.error}`);
    assert.ok(row.ms > 0);
    assert.ok(row.gflop > 0);
  }
  const at = (r: number, m: string) => report.rows.find((x) => x.resolution === r && x.method === m)!;
  assert.deepEqual(at(224, 'ps3').scales, [56, 112, 224]);
  assert.equal(at(224, 'lowres').tokens, 16);
  assert.equal(at(224, 'anyres').tokens, 17 * 16);
  assert.equal(at(224, 's2').tokens, 21 * 16);
  assert.equal(at(112, 's2').tokens, 5 * 16);
  assert.equal(at(224, 'ps3').tokens, 16 + 32);
  assert.deepEqual(report.dense.map((d) => d.tokens), [64, 256]);
  assert.ok(formatCostTable(report).includes('dense (analytic)'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-cost-'));
  const files = await writeCostPlots(report, dir);
  assert.equal(files.length, 3);
  for (const f of files) {
    const meta = await sharp(f).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 800, 500]);
  }
  fs.rmSync(dir, { recursive: true });
});

test('a measurement in a fresh process comes back as a row', async () => {
  const row = await measureCostIsolated({ config: tinyConfig().raw, resolution: 112, method: 'lowres', looks: 1, repeats: 1, seed: 0 }, 120);
  assert.equal(row.status, 'ok', row.error ?? '');
  assert.equal(row.tokens, 16);
  assert.ok(row.ms! > 0);
});
