/**
 * src/eval/plot.ts: ticks, SVG text escaping, missing points, and PNGs that decode at the asked size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { formatTick, logTicks, niceTicks, plotSvg, renderPlot, type PlotSpec } from '../../src/eval/plot.js';

const SPEC: PlotSpec = {
  title: 'Time vs resolution <tiny & random>',
  xLabel: 'resolution (px)',
  yLabel: 'ms',
  logX: true,
  logY: true,
  missingLabel: 'out of memory',
  xTicks: [756, 1512, 3780, 7560],
  series: [
    { name: 'PS3', points: [{ x: 756, y: 900 }, { x: 1512, y: 1400 }, { x: 3780, y: 2000 }, { x: 7560, y: 3500 }] },
    { name: 'S²', points: [{ x: 756, y: 1000 }, { x: 1512, y: 5000 }, { x: 3780, y: 29000 }, { x: 7560, y: null }] },
  ],
};

test('ticks: round linear steps covering the range; log ticks at powers of ten (with 2 and 5 over short ranges)', () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  const t = niceTicks(3, 97);
  assert.ok(t[0]! <= 3 && t[t.length - 1]! >= 97);
  assert.deepEqual(niceTicks(5, 5).length > 1, true);
  assert.deepEqual(logTicks(700, 80000), [100, 1000, 10000, 100000]);
  assert.deepEqual(logTicks(300, 3000), [200, 500, 1000, 2000, 5000]);
  assert.equal(formatTick(72900), '72.9k');
  assert.equal(formatTick(2500000), '2.5M');
  assert.equal(formatTick(0.25), '0.25');
});

test('the SVG escapes text, draws every series in the legend and marks missing points', () => {
  const svg = plotSvg(SPEC);
  assert.match(svg, /Time vs resolution &lt;tiny &amp; random&gt;/);
  assert.ok(!svg.includes('<tiny'));
  assert.match(svg, />PS3</);
  assert.match(svg, />S²</);
  assert.match(svg, />out of memory</);
  assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
});

test('the PNG decodes, at the asked size', async () => {
  const png = await renderPlot({ ...SPEC, width: 640, height: 400 });
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, 'png');
  assert.equal(meta.width, 640);
  assert.equal(meta.height, 400);
  const scatter = await renderPlot({ title: 'acc', xLabel: 'tokens', yLabel: '%', kind: 'scatter', yDomain: [0, 100], hlines: [{ y: 25, label: 'chance' }], series: [{ name: 'ps3', points: [{ x: 1369, y: 30, label: '1 look' }] }] });
  const m2 = await sharp(scatter).metadata();
  assert.equal(m2.width, 800);
  assert.equal(m2.height, 500);
});

test('a bar plot: one bar per solid series and category, a dashed series as a level across each group, category names as ticks, missing bars marked', async () => {
  const spec: PlotSpec = {
    title: 'probe',
    xLabel: 'attribute',
    yLabel: '%',
    kind: 'bar',
    xTickLabels: ['colour', 'shape'],
    yDomain: [0, 100],
    series: [
      { name: 'tokens', points: [{ x: 0, y: 80, label: '80' }, { x: 1, y: null, label: 'no data' }] },
      { name: 'pixels', points: [{ x: 0, y: 40 }, { x: 1, y: 30 }] },
      { name: 'majority', dashed: true, points: [{ x: 0, y: 10 }, { x: 1, y: 20 }] },
    ],
  };
  const svg = plotSvg(spec);
  // 3 bars drawn (one missing) and 2 legend swatches
  assert.equal((svg.match(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+" fill="#/g) ?? []).length, 3 + 2);
  assert.equal((svg.match(/stroke-dasharray="8 5"/g) ?? []).length, 2);
  assert.match(svg, />colour</);
  assert.match(svg, />shape</);
  assert.match(svg, />no data</);
  const meta = await sharp(await renderPlot(spec)).metadata();
  assert.equal(meta.width, 800);
});
