/**
 * Tests for src/io/config.ts (`parseConfig`) and the parameter table it implies
 * (src/model/params.ts): the fixture config, a config laid out like the released
 * PS3-4K-SigLIP2 one (so400m trunk, resolved to its full parameter table without allocating a
 * single weight), and every refused field.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUserError } from '../../src/errors.js';
import { parseConfig } from '../../src/io/config.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { countParams, paramTable, textParams, visionParams, WRAPPER_KEYS } from '../../src/model/params.js';
import { initEngine, tf } from '../../src/tensor/engine.js';

// Compiled to dist/test/io/, so the repository root is three levels up.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = path.resolve(root, '../shared/fixtures/ps3-tiny-a');
const fixtureJson = (): Record<string, any> => JSON.parse(fs.readFileSync(path.join(fixtures, 'config.json'), 'utf8')) as Record<string, any>;

before(async () => {
  await initEngine();
});

/** The released PS3-4K-SigLIP2 config, as Hugging Face stores it. */
const released = (): Record<string, any> => ({
  model_type: 'ps3',
  vision_config: {
    model_name: 'vit_so400m_patch14_siglip_378',
    hidden_size: 1152,
    pool: 'map',
    ps3_scales: [378, 756, 1512, 3780],
    select_based_on_layer: [0, 9, 18, 26],
    max_select_num: 2560,
    separate_pos_emb: true,
    highres_selection_feature: true,
    highres_selection_module_hidden_dim: 512,
    highres_selection_module_out_dim: 512,
    highres_selection_module_depth: 3,
    highres_selection_module_kernel_size: 28,
  },
  text_config: {
    output_dim: 1152,
    prompt_proj_dim: 1152,
    context_length: 64,
    vocab_size: 256000,
    width: 1152,
    heads: 16,
    layers: 27,
    mlp_ratio: 3.7362,
    no_causal_mask: true,
    proj_bias: true,
    pool_type: 'last',
    norm_kwargs: { eps: 1e-6 },
    act_kwargs: { approximate: 'tanh' },
    tokenizer_kwargs: { clean: 'canonicalize' },
  },
});

/** parseConfig(json) must throw a UserError whose message names the file and every one of `parts`. */
function refused(json: unknown, parts: string[]): void {
  assert.throws(
    () => parseConfig(json, 'some/dir/config.json'),
    (e: unknown) => {
      assert.ok(isUserError(e), `expected a UserError, got ${String(e)}`);
      const msg = (e as Error).message;
      assert.ok(msg.includes('some/dir/config.json'), `message ${JSON.stringify(msg)} should name the file`);
      for (const p of parts) assert.ok(msg.includes(p), `message ${JSON.stringify(msg)} should mention ${JSON.stringify(p)}`);
      return true;
    },
  );
}

/** A copy of `base` with `edit` applied. */
function edited(base: Record<string, any>, edit: (c: Record<string, any>) => void): Record<string, any> {
  const c = structuredClone(base);
  edit(c);
  return c;
}

// ---------------------------------------------------------------------------------------------
// The fixture config

test('the fixture config parses: scales, trunk dimensions, selection settings and text fields', () => {
  const c = parseConfig(fixtureJson(), 'fixture');
  const v = c.vision;
  assert.deepEqual([...v.scales], [56, 112, 224, 560]);
  assert.deepEqual([...v.selectBasedOnLayer], [0, 1, 2, 3]);
  assert.equal(v.maxSelectNum, 96);
  assert.equal(v.maxSelectNumEachScale, null);
  assert.equal(v.separatePosEmb, true);
  assert.equal(v.highresSelectionFeature, true);
  assert.deepEqual(v.convnet, { hidden: 16, out: 16, depth: 1, kernel: 28 });
  // trunk spelled out in vision_config.trunk; mlp hidden = int(32 * 3.7362) = int(119.558) = 119
  assert.deepEqual(v.trunk, {
    patchSize: 14,
    width: 32,
    depth: 4,
    heads: 2,
    mlpHidden: 119,
    poolHeads: 2,
    poolMlpHidden: 119,
    qkvBias: true,
    normEps: 1e-6,
    imgSize: 56,
  });
  const t = c.text;
  assert.equal(t.outputDim, 32);
  assert.equal(t.promptProjDim, 32);
  assert.equal(t.contextLength, 8);
  assert.equal(t.vocabSize, 64);
  assert.equal(t.width, 32);
  assert.equal(t.heads, 2);
  assert.equal(t.layers, 2);
  assert.equal(t.mlpHidden, 119);
  assert.equal(t.causalMask, false);
  assert.equal(t.projBias, true);
  assert.equal(t.poolType, 'last');
  assert.equal(t.normEps, 1e-6);
  assert.equal(t.geluTanh, false);
  assert.equal(t.padId, 0);
  assert.equal(c.initLogitScale, 2.302585092994046);
  assert.equal(c.initLogitBias, -10);
});

test("the fixture config's parameter table plus logit_scale/logit_bias is exactly model.safetensors' key set and shapes", () => {
  const table = new Map([...paramTable(parseConfig(fixtureJson(), 'fixture')), ...WRAPPER_KEYS]);
  const file = openSafetensors(path.join(fixtures, 'model.safetensors'));
  const stored = [...file.entries.keys()].sort();
  const expected = [...table.keys()].sort();
  assert.deepEqual(expected.filter((k) => !file.entries.has(k)), [], 'keys in the table but not in the file');
  assert.deepEqual(stored.filter((k) => !table.has(k)), [], 'keys in the file but not in the table');
  assert.equal(stored.length, expected.length);
  for (const [key, shape] of table) assert.deepEqual([...file.entries.get(key)!.shape], [...shape], key);
});

// ---------------------------------------------------------------------------------------------
// A released config (so400m trunk)

test('a released PS3-4K-SigLIP2 config resolves to the so400m trunk and the SigLIP2 text tower', () => {
  const c = parseConfig(released(), 'released');
  assert.equal(c.vision.modelName, 'vit_so400m_patch14_siglip_378');
  assert.deepEqual(c.vision.trunk, {
    patchSize: 14,
    width: 1152,
    depth: 27,
    heads: 16,
    mlpHidden: 4304, // int(1152 * 3.7362) = int(4304.10)
    poolHeads: 16,
    poolMlpHidden: 4304,
    qkvBias: true,
    normEps: 1e-6,
    imgSize: 378,
  });
  assert.deepEqual([...c.vision.scales], [378, 756, 1512, 3780]);
  assert.deepEqual([...c.vision.selectBasedOnLayer], [0, 9, 18, 26]);
  assert.equal(c.vision.maxSelectNum, 2560);
  assert.deepEqual(c.vision.convnet, { hidden: 512, out: 512, depth: 3, kernel: 28 });
  const t = c.text;
  assert.equal(t.width, 1152);
  assert.equal(t.layers, 27);
  assert.equal(t.heads, 16);
  assert.equal(t.mlpHidden, 4304);
  assert.equal(t.vocabSize, 256000);
  assert.equal(t.contextLength, 64);
  assert.equal(t.causalMask, false);
  assert.equal(t.poolType, 'last');
  assert.equal(t.geluTanh, true);
  assert.equal(t.normEps, 1e-6);
  assert.equal(t.tokenizerClean, 'canonicalize');
  // defaults from configuration_ps3.py
  assert.equal(c.initLogitScale, Math.log(10));
  assert.equal(c.initLogitBias, -10);
});

test('the released config gives the right parameter table without allocating any tensor', () => {
  const tensorsBefore = tf.memory().numTensors;
  const config = parseConfig(released(), 'released');
  const table = paramTable(config);
  assert.equal(tf.memory().numTensors, tensorsBefore, 'building the table must not allocate');

  // Key count, by hand:
  //   vision: patch_embed 2 + pos_embed 1 + 27 blocks x 12 + norm 2
  //           + attn_pool (latent 1, q/kv/proj 6, norm 2, mlp 4) 13
  //           + selection_feature_proj 6 + prior_prompt 1 + pos_emb_residual 3
  //           + convnet (stem 4, 3 blocks x 9, out_proj 2) 33 + prompt_proj_for_highres 2 = 387
  //   text:   token_embedding 1 + positional_embedding 1 + 27 resblocks x 12 + ln_final 2
  //           + text_projection 2 + prompt_proj 6 = 336
  assert.equal(visionParams(config).size, 387);
  assert.equal(textParams(config).size, 336);
  assert.equal(table.size, 723);

  const expectShapes: Array<[string, number[]]> = [
    ['vision_model.trunk.patch_embed.proj.weight', [1152, 3, 14, 14]],
    ['vision_model.trunk.pos_embed', [1, 729, 1152]], // (378 / 14)^2 = 27^2
    ['vision_model.trunk.blocks.0.attn.qkv.weight', [3456, 1152]],
    ['vision_model.trunk.blocks.26.mlp.fc1.weight', [4304, 1152]],
    ['vision_model.trunk.blocks.26.mlp.fc2.weight', [1152, 4304]],
    ['vision_model.trunk.attn_pool.latent', [1, 1, 1152]],
    ['vision_model.trunk.attn_pool.kv.weight', [2304, 1152]],
    ['vision_model.trunk.attn_pool.mlp.fc1.weight', [4304, 1152]],
    ['vision_model.pos_emb_residual.0', [1, 54 * 54, 1152]],
    ['vision_model.pos_emb_residual.1', [1, 108 * 108, 1152]],
    ['vision_model.pos_emb_residual.2', [1, 270 * 270, 1152]],
    ['vision_model.selection_feature_proj.fc1.weight', [4608, 4608]], // 4 layers x 1152
    ['vision_model.selection_feature_proj.norm.weight', [4608]],
    ['vision_model.selection_feature_proj.fc2.weight', [3456, 4608]], // 3 high-res scales x 1152
    ['vision_model.prior_prompt', [1152]],
    ['vision_model.prompt_proj_for_highres.weight', [1536, 1152]], // 3 x 512
    ['vision_model.highres_selection_feature_module.stem.0.weight', [512, 3, 28, 28]],
    ['vision_model.highres_selection_feature_module.stem.1.weight', [512]],
    ['vision_model.highres_selection_feature_module.blocks.2.conv_dw.weight', [512, 1, 7, 7]],
    ['vision_model.highres_selection_feature_module.blocks.2.mlp.fc1.weight', [2048, 512]],
    ['vision_model.highres_selection_feature_module.blocks.2.weight', [512]],
    ['vision_model.highres_selection_feature_module.out_proj.weight', [512, 512, 1, 1]],
    ['text_model.token_embedding.weight', [256000, 1152]],
    ['text_model.positional_embedding', [64, 1152]],
    ['text_model.transformer.resblocks.26.attn.in_proj_weight', [3456, 1152]],
    ['text_model.transformer.resblocks.26.mlp.c_fc.weight', [4304, 1152]],
    ['text_model.text_projection.weight', [1152, 1152]],
    ['text_model.text_projection.bias', [1152]],
    ['text_model.prompt_proj.fc2.weight', [1152, 1152]],
  ];
  for (const [key, shape] of expectShapes) assert.deepEqual(table.get(key), shape, key);
  for (const absent of ['vision_model.trunk.blocks.27.norm1.weight', 'vision_model.pos_emb_residual.3', 'vision_model.trunk.cls_token', 'text_model.text_projection', 'logit_scale']) {
    assert.ok(!table.has(absent), `${absent} should not be in the table`);
  }

  // Parameter count, by hand (D = 1152, M = 4304 for both towers)
  const D = 1152;
  const M = 4304;
  const block = 2 * D + (3 * D * D + 3 * D) + (D * D + D) + 2 * D + (M * D + M) + (D * M + D);
  const attnPool = D + (D * D + D) + (2 * D * D + 2 * D) + (D * D + D) + 2 * D + (M * D + M) + (D * M + D);
  const trunk = (D * 3 * 14 * 14 + D) + 729 * D + 27 * block + 2 * D + attnPool;
  const S = 4 * D;
  const H = 512;
  const convnet = (H * 3 * 28 * 28 + H) + 2 * H + 3 * (H * 49 + H + 2 * H + (4 * H * H + 4 * H) + (H * 4 * H + H) + H) + (H * H + H);
  const ps3Vision = (S * S + S) + 2 * S + (3 * D * S + 3 * D) + D + (54 * 54 + 108 * 108 + 270 * 270) * D + convnet + (1536 * D + 1536);
  const textBlock = 2 * D + (3 * D * D + 3 * D) + (D * D + D) + 2 * D + (M * D + M) + (D * M + D);
  const text = 256000 * D + 64 * D + 27 * textBlock + 2 * D + (D * D + D) + (D * D + D) + 2 * D + (D * D + D);
  assert.equal(countParams(visionParams(config)), trunk + ps3Vision);
  assert.equal(countParams(textParams(config)), text);
  assert.equal(countParams(table), trunk + ps3Vision + text);
  // plausibility: the so400m trunk is ~428M; PS3 adds ~140M (most of it the 4K position residual)
  assert.ok(trunk > 425e6 && trunk < 431e6, `trunk ${trunk}`);
  assert.ok(countParams(table) > 1.2e9 && countParams(table) < 1.35e9, `total ${countParams(table)}`);
  assert.equal(tf.memory().numTensors, tensorsBefore, 'counting must not allocate');
});

test('the _384 trunk name resolves too (its position embedding is still 27 x 27)', () => {
  const c = parseConfig(edited(released(), (j) => (j['vision_config'].model_name = 'vit_so400m_patch14_siglip_384')), 'released-384');
  assert.equal(c.vision.trunk.width, 1152);
  assert.equal(c.vision.trunk.depth, 27);
  assert.equal(c.vision.trunk.imgSize, 384);
  assert.deepEqual(paramTable(c).get('vision_model.trunk.pos_embed'), [1, 729, 1152]);
});

test('ps3_scales are sorted ascending, as the reference does', () => {
  const c = parseConfig(edited(released(), (j) => (j['vision_config'].ps3_scales = [3780, 378, 1512, 756])), 'x');
  assert.deepEqual([...c.vision.scales], [378, 756, 1512, 3780]);
});

test('unknown fields of a released config are ignored; absent ones take the reference defaults', () => {
  const c = parseConfig(
    edited(released(), (j) => {
      j['architectures'] = ['PS3Model'];
      j['torch_dtype'] = 'float32';
      j['vision_config'].some_future_field = 3;
    }),
    'x',
  );
  assert.equal(c.vision.trunk.width, 1152);
  const minimal = parseConfig({ model_type: 'ps3', vision_config: { model_name: 'vit_so400m_patch14_siglip_384' }, text_config: { width: 1152, heads: 16, prompt_proj_dim: 1152 } }, 'x');
  assert.deepEqual([...minimal.vision.scales], [378, 756, 1512]);
  assert.equal(minimal.vision.maxSelectNum, 1280);
  assert.deepEqual([...minimal.vision.selectBasedOnLayer], [0, 9, 18, 26]);
});

// ---------------------------------------------------------------------------------------------
// Refusals

test('an unknown trunk name is refused by name', () => {
  refused(edited(released(), (j) => (j['vision_config'].model_name = 'vit_huge_patch14_clip_224')), ['vit_huge_patch14_clip_224', 'vision_config.model_name']);
  refused(edited(released(), (j) => delete j['vision_config'].model_name), ['vision_config.model_name']);
});

test('a C-RADIO trunk is refused with a clear message', () => {
  refused(edited(released(), (j) => (j['vision_config'].model_name = 'c-radio_v3-h')), ['c-radio_v3-h', 'C-RADIO']);
  refused(edited(released(), (j) => (j['vision_config'].radio = true)), ['C-RADIO']);
});

test('ps3_scales that are not multiples of the patch size, or of the low-res scale, are refused', () => {
  refused(edited(released(), (j) => (j['vision_config'].ps3_scales = [378, 760, 1512])), ['vision_config.ps3_scales', '760']);
  refused(edited(released(), (j) => (j['vision_config'].ps3_scales = [378, 504])), ['vision_config.ps3_scales', '504']);
  refused(edited(released(), (j) => (j['vision_config'].ps3_scales = [378])), ['vision_config.ps3_scales']);
  refused(edited(released(), (j) => (j['vision_config'].ps3_scales = [378, 756.5])), ['vision_config.ps3_scales']);
});

test('a select_based_on_layer entry at or beyond the trunk depth is refused', () => {
  refused(edited(released(), (j) => (j['vision_config'].select_based_on_layer = [0, 9, 18, 27])), ['vision_config.select_based_on_layer', '27']);
  refused(edited(released(), (j) => (j['vision_config'].select_based_on_layer = [0, -1])), ['vision_config.select_based_on_layer']);
  refused(edited(released(), (j) => (j['vision_config'].select_based_on_layer = [])), ['vision_config.select_based_on_layer']);
});

test('max_select_num_each_scale with the wrong number of entries is refused', () => {
  refused(edited(released(), (j) => (j['vision_config'].max_select_num_each_scale = [85, 2475])), ['vision_config.max_select_num_each_scale', '3']);
  const ok = parseConfig(edited(released(), (j) => (j['vision_config'].max_select_num_each_scale = [100, 400, 2060])), 'x');
  assert.deepEqual(ok.vision.maxSelectNumEachScale, [100, 400, 2060]);
});

test('negative, zero and non-integer counts are refused, naming the field', () => {
  const cases: Array<[(j: Record<string, any>) => void, string]> = [
    [(j) => (j['vision_config'].max_select_num = -1), 'vision_config.max_select_num'],
    [(j) => (j['vision_config'].max_select_num = 12.5), 'vision_config.max_select_num'],
    [(j) => (j['vision_config'].max_select_num = '2560'), 'vision_config.max_select_num'],
    [(j) => (j['vision_config'].highres_selection_module_kernel_size = 0), 'vision_config.highres_selection_module_kernel_size'],
    [(j) => (j['vision_config'].highres_selection_module_depth = -1), 'vision_config.highres_selection_module_depth'],
    [(j) => (j['vision_config'].max_select_num_each_scale = [85, -1, 2134]), 'vision_config.max_select_num_each_scale'],
    [(j) => (j['text_config'].layers = -2), 'text_config.layers'],
    [(j) => (j['text_config'].heads = 1.5), 'text_config.heads'],
    [(j) => (j['text_config'].context_length = 0), 'text_config.context_length'],
    [(j) => (j['text_config'].vocab_size = 3.5), 'text_config.vocab_size'],
    [(j) => (j['text_config'].mlp_ratio = -4), 'text_config.mlp_ratio'],
  ];
  for (const [edit, field] of cases) refused(edited(released(), edit), [field]);
});

test('fields of a spelled-out trunk are checked too', () => {
  refused(edited(fixtureJson(), (j) => (j['vision_config'].trunk.depth = 0)), ['vision_config.trunk.depth']);
  refused(edited(fixtureJson(), (j) => (j['vision_config'].trunk.num_heads = 3)), ['vision_config.trunk', 'num_heads']);
  refused(edited(fixtureJson(), (j) => (j['vision_config'].trunk.class_token = true)), ['vision_config.trunk.class_token']);
  refused(edited(fixtureJson(), (j) => (j['vision_config'].trunk.global_pool = 'avg')), ['vision_config.trunk.global_pool']);
});

test('a wrong or missing model_type is refused', () => {
  refused(edited(released(), (j) => (j['model_type'] = 'siglip')), ['model_type']);
  refused(edited(released(), (j) => delete j['model_type']), ['model_type']);
  refused(null, ['(top level)']);
  refused([1, 2], ['(top level)']);
});

test('a text width not divisible by its heads is refused, naming text_config', () => {
  refused(edited(released(), (j) => (j['text_config'].heads = 7)), ['text_config', 'heads 7', 'width 1152']);
});

test('a hidden_size or prompt_proj_dim that does not match the trunk width is refused', () => {
  refused(edited(released(), (j) => (j['vision_config'].hidden_size = 768)), ['vision_config.hidden_size', '768']);
  refused(edited(released(), (j) => (j['text_config'].prompt_proj_dim = 768)), ['text_config.prompt_proj_dim', '768']);
});
