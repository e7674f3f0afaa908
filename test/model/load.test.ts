/**
 * Tests for src/model/load.ts: the fixture folder loads; broken copies of it (built in a temp
 * dir) are refused with a UserError naming the key, field or file; random models are
 * reproducible per seed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUserError } from '../../src/errors.js';
import { readSafetensors, serializeSafetensors, writeSafetensors, type NamedArray } from '../../src/io/safetensors.js';
import { loadModel, randomModel } from '../../src/model/load.js';
import { paramTable, WRAPPER_KEYS } from '../../src/model/params.js';
import { presetConfig } from '../../src/model/presets.js';
import { initEngine, tf } from '../../src/tensor/engine.js';

// Compiled to dist/test/model/, so the repository root is three levels up.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = path.resolve(root, '../shared/fixtures/ps3-tiny-a');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-load-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let stored: Map<string, NamedArray>;
const configText = fs.readFileSync(path.join(fixtures, 'config.json'), 'utf8');

before(async () => {
  await initEngine();
  stored = readSafetensors(path.join(fixtures, 'model.safetensors'));
});

let folders = 0;
/** A model folder in the temp dir: `config` (text, or null for none) and `model` (bytes, map, or null). */
function folder(model: Map<string, NamedArray> | Uint8Array | null, config: string | null = configText): string {
  const dir = path.join(tmp, `model-${folders++}`);
  fs.mkdirSync(dir);
  if (config !== null) fs.writeFileSync(path.join(dir, 'config.json'), config);
  if (model instanceof Map) writeSafetensors(path.join(dir, 'model.safetensors'), model);
  else if (model) fs.writeFileSync(path.join(dir, 'model.safetensors'), model);
  return dir;
}

function withEdit(edit: (m: Map<string, NamedArray>) => void): Map<string, NamedArray> {
  const m = new Map(stored);
  edit(m);
  return m;
}

/** loadModel(dir) must throw a UserError mentioning every one of `parts`, and allocate nothing. */
function refused(dir: string, parts: string[]): void {
  const before = tf.memory().numTensors;
  assert.throws(
    () => loadModel(dir),
    (e: unknown) => {
      assert.ok(isUserError(e), `expected a UserError, got ${e instanceof Error ? e.stack : String(e)}`);
      const msg = (e as Error).message;
      for (const p of parts) assert.ok(msg.includes(p), `message ${JSON.stringify(msg)} should mention ${JSON.stringify(p)}`);
      return true;
    },
  );
  assert.equal(tf.memory().numTensors, before, 'a refused load must not leave tensors behind');
}

/** Re-emit serialized safetensors bytes with an edited header (the data bytes unchanged). */
function withHeader(bytes: Buffer, edit: (h: Record<string, any>) => void): Buffer {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, any>;
  edit(header);
  const text = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.alloc(8 + text.length + bytes.length - 8 - n);
  out.writeBigUInt64LE(BigInt(text.length), 0);
  text.copy(out, 8);
  bytes.copy(out, 8 + text.length, 8 + n);
  return out;
}

// ---------------------------------------------------------------------------------------------

test('the fixture folder loads: every table key with its shape and values, plus the wrapper keys', () => {
  const before = tf.memory().numTensors;
  const model = loadModel(fixtures);
  try {
    assert.equal(model.source, fixtures);
    assert.equal(model.config.vision.trunk.width, 32);
    const table = paramTable(model.config);
    const keys = [...model.weights.keys()].sort();
    assert.deepEqual(keys, [...table.keys(), ...WRAPPER_KEYS.keys()].sort());
    // weights become tensors on first use only (a trunk on another engine never does)
    assert.equal(tf.memory().numTensors, before);
    for (const [key, shape] of table) assert.deepEqual(model.weights.shapeOf(key), shape, key);
    assert.equal(tf.memory().numTensors, before);
    for (const [key, shape] of table) assert.deepEqual(model.weights.get(key).shape, shape, key);
    assert.equal(tf.memory().numTensors, before + table.size);
    for (const key of WRAPPER_KEYS.keys()) model.weights.get(key);
    assert.equal(tf.memory().numTensors, before + keys.length);
    // values are the stored ones
    const pos = model.weights.get('vision_model.trunk.pos_embed').dataSync();
    assert.deepEqual(Array.from(pos.slice(0, 8)), Array.from(stored.get('vision_model.trunk.pos_embed')!.data.slice(0, 8)));
    assert.equal(model.weights.get('logit_scale').dataSync()[0], stored.get('logit_scale')!.data[0]);
  } finally {
    model.weights.dispose();
  }
  assert.equal(tf.memory().numTensors, before, 'dispose() frees every weight');
});

test('a vision-only or text-only load keeps just that tower', () => {
  const vision = loadModel(fixtures, 'vision');
  const text = loadModel(fixtures, 'text');
  try {
    assert.ok([...vision.weights.keys()].every((k) => !k.startsWith('text_model.')));
    assert.ok(vision.weights.has('vision_model.prior_prompt'));
    assert.ok([...text.weights.keys()].every((k) => !k.startsWith('vision_model.')));
    assert.ok(text.weights.has('text_model.token_embedding.weight'));
  } finally {
    vision.weights.dispose();
    text.weights.dispose();
  }
});

test('a copy rewritten by writeSafetensors loads (the writer and loader agree)', () => {
  const model = loadModel(folder(stored));
  model.weights.dispose();
});

test('a missing key is refused, naming it', () => {
  refused(folder(withEdit((m) => m.delete('vision_model.prior_prompt'))), ['missing key "vision_model.prior_prompt"', 'model.safetensors']);
  refused(folder(withEdit((m) => m.delete('text_model.transformer.resblocks.1.mlp.c_proj.bias'))), ['"text_model.transformer.resblocks.1.mlp.c_proj.bias"']);
});

test('an unexpected key is refused, naming it', () => {
  refused(folder(withEdit((m) => m.set('vision_model.trunk.blocks.4.norm1.weight', { shape: [32], data: new Float32Array(32) }))), ['unexpected key "vision_model.trunk.blocks.4.norm1.weight"']);
  refused(folder(withEdit((m) => m.set('vision_model.trunk.cls_token', { shape: [1, 1, 32], data: new Float32Array(32) }))), ['"vision_model.trunk.cls_token"']);
});

test('a misshaped key is refused, naming it and both shapes', () => {
  refused(folder(withEdit((m) => m.set('vision_model.prior_prompt', { shape: [1, 32], data: new Float32Array(32) }))), ['"vision_model.prior_prompt"', '[1,32]', '[32]']);
  refused(folder(withEdit((m) => m.set('vision_model.trunk.blocks.0.mlp.fc1.weight', { shape: [32, 119], data: new Float32Array(32 * 119) }))), ['"vision_model.trunk.blocks.0.mlp.fc1.weight"', '[32,119]', '[119,32]']);
  // the wrapper's extra keys are shape-checked too
  refused(folder(withEdit((m) => m.set('logit_scale', { shape: [2], data: new Float32Array(2) }))), ['"logit_scale"']);
});

test('a truncated model.safetensors is refused, naming the file and the key that runs past the end', () => {
  const bytes = serializeSafetensors(stored);
  const lastKey = [...stored.keys()].sort().at(-1)!; // the writer lays data out in key order
  const dir = folder(bytes.subarray(0, bytes.length - 4));
  refused(dir, [path.join(dir, 'model.safetensors'), `"${lastKey}"`, 'truncated']);
  refused(folder(bytes.subarray(0, 6)), ['model.safetensors', 'too short']);
});

test('a header that lies about offsets is refused, naming the key', () => {
  const bytes = serializeSafetensors(stored);
  // one key claims data beyond the end
  refused(folder(withHeader(bytes, (h) => {
    const e = h['vision_model.prior_prompt'];
    const size = e.data_offsets[1] - e.data_offsets[0];
    e.data_offsets = [bytes.length, bytes.length + size];
  })), ['"vision_model.prior_prompt"', 'past the end']);
  // one key points into another's bytes
  refused(folder(withHeader(bytes, (h) => {
    const a = h['vision_model.prior_prompt'];
    const b = h['vision_model.trunk.norm.weight']; // also [32] F32
    a.data_offsets = [...b.data_offsets];
  })), ['"vision_model.prior_prompt"', '"vision_model.trunk.norm.weight"', 'overlap']);
  // a size that does not match the shape
  refused(folder(withHeader(bytes, (h) => {
    const e = h['vision_model.prior_prompt'];
    e.data_offsets = [e.data_offsets[0], e.data_offsets[1] - 4];
  })), ['"vision_model.prior_prompt"', 'data_offsets']);
});

test('a config.json with an unknown trunk or a bad field is refused, naming the file and field', () => {
  const json = JSON.parse(configText) as Record<string, any>;
  const unknown = structuredClone(json);
  delete unknown['vision_config'].trunk;
  unknown['vision_config'].model_name = 'vit_mystery_patch14';
  let dir = folder(stored, JSON.stringify(unknown));
  refused(dir, [path.join(dir, 'config.json'), 'vit_mystery_patch14']);

  const bad = structuredClone(json);
  bad['vision_config'].max_select_num = -96;
  dir = folder(stored, JSON.stringify(bad));
  refused(dir, [path.join(dir, 'config.json'), 'vision_config.max_select_num']);

  // a config that parses but implies other shapes: the loader names the first key that disagrees
  const deeper = structuredClone(json);
  deeper['vision_config'].trunk.depth = 5;
  refused(folder(stored, JSON.stringify(deeper)), ['missing key "vision_model.trunk.blocks.4.']);

  dir = folder(stored, '{"model_type": "ps3", ');
  refused(dir, [path.join(dir, 'config.json'), 'not valid JSON']);
});

test('a missing config.json or model.safetensors is refused, naming the file', () => {
  let dir = folder(stored, null);
  refused(dir, [path.join(dir, 'config.json')]);
  dir = folder(null);
  refused(dir, [path.join(dir, 'model.safetensors'), 'no such file']);
});

test('a folder that does not exist (or is a file) is refused, naming it', () => {
  const missing = path.join(tmp, 'no-such-model');
  refused(missing, [missing, 'not found']);
  const file = path.join(tmp, 'a-file');
  fs.writeFileSync(file, 'x');
  refused(file, [file]);
});

test('randomModel is deterministic per seed and different across seeds', () => {
  const before = tf.memory().numTensors;
  const config = presetConfig('tiny-4k');
  const a = randomModel(config, 7);
  const b = randomModel(config, 7);
  const c = randomModel(config, 8);
  try {
    const table = paramTable(config);
    assert.deepEqual([...a.weights.keys()].sort(), [...table.keys(), ...WRAPPER_KEYS.keys()].sort());
    for (const [key, shape] of table) assert.deepEqual(a.weights.get(key).shape, shape, key);
    let random = 0;
    for (const key of a.weights.keys()) {
      const x = a.weights.get(key).dataSync();
      const y = b.weights.get(key).dataSync();
      assert.ok(x.length === y.length && x.every((v, i) => Object.is(v, y[i])), `${key} differs between two seed-7 models`);
      // every randomly drawn tensor (not a constant norm weight, bias or scale) differs across seeds
      if (x.every((v) => v === x[0])) continue;
      random++;
      const z = c.weights.get(key).dataSync();
      assert.ok(x.some((v, i) => v !== z[i]), `${key} is the same for seeds 7 and 8`);
    }
    assert.ok(random > 30, `only ${random} random tensors`);
    assert.equal(a.weights.get('logit_scale').dataSync()[0], Math.fround(Math.log(10)));
    assert.equal(a.weights.get('logit_bias').dataSync()[0], -10);
    assert.equal(a.source, 'random weights (seed 7)');
  } finally {
    for (const m of [a, b, c]) m.weights.dispose();
  }
  assert.equal(tf.memory().numTensors, before);
});
