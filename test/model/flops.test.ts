/** The analytic FLOP counts against counts done by hand for a small ViT (multiply-adds count 2). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { presetConfig } from '../../src/model/presets.js';
import { embedFlops, s2Flops, trunkFlops } from '../../src/model/flops.js';
import type { VisionConfig } from '../../src/io/config.js';

// width 4, 2 blocks, MLP 8 wide, patches of 2, low-res 4 px (4 patches), scales 4 and 8
const base = presetConfig('micro').vision;
const cfg: VisionConfig = { ...base, scales: [4, 8], trunk: { ...base.trunk, width: 4, depth: 2, mlpHidden: 8, patchSize: 2 } };

test('trunk: qkv, projection, MLP and attention of every block, counted by hand', () => {
  // 3 tokens attending to 3 keys, per block:
  //   qkv 2*3*4*12 = 288; projection 2*3*4*4 = 96; MLP 2*3*4*8 + 2*3*8*4 = 384;
  //   scores q·k 2*3*3*4 = 72 and weighted values 2*3*3*4 = 72
  assert.equal(trunkFlops(cfg, 3, 3), 2 * (288 + 96 + 384 + 72 + 72));
  // 2 queries over 5 keys (a look attending to the low-res cache): attention grows with the keys only
  //   qkv 2*2*4*12 = 192; projection 64; MLP 256; attention 2*2*5*4 * 2 = 160
  assert.equal(trunkFlops(cfg, 2, 5), 2 * (192 + 64 + 256 + 160));
});

test('patch embedding and S²\'s tiles, counted by hand', () => {
  // a 2x2 patch of 3 channels projected to width 4: 2*12*4 = 96 per patch
  assert.equal(embedFlops(cfg, 5), 5 * 96);
  // scales 4 and 8 cut into 4 px tiles: 1 + 4 tiles, each 4 patches through embedding and trunk
  const s2 = s2Flops(cfg);
  assert.equal(s2.tiles, 5);
  // one tile: embedding 4*96 = 384; trunk of 4 tokens: per block qkv 384, projection 128, MLP 512, attention 256
  assert.equal(s2.flops, 5 * (384 + 2 * (384 + 128 + 512 + 256)));
});
