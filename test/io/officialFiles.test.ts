/**
 * The files of a model folder against what the official PS3 classes read
 * (`test/data/official/fields.json`, from their constructors): a checkpoint written by training
 * sets every field the official config would otherwise default, to the model's real values; its
 * image processor and tokenizer config use only the names the official classes take; and a
 * folder as the official export writes it (`test/data/official/export/`) loads here.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUserError } from '../../src/errors.js';
import { parseConfig } from '../../src/io/config.js';
import { parsePreprocessor, readPreprocessor } from '../../src/io/preprocessor.js';
import { writeSafetensors, type NamedArray } from '../../src/io/safetensors.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { imageProcessor, loadModel, randomModel } from '../../src/model/load.js';
import { presetConfig } from '../../src/model/presets.js';
import { initEngine } from '../../src/tensor/engine.js';
import { AdamW } from '../../src/train/optimizer.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { synthVocabulary, writeWordTokenizer } from '../../src/data/wordTokenizer.js';

type Json = Record<string, any>;

const root = fileURLToPath(new URL('../../../', import.meta.url));
const official = path.join(root, 'test/data/official');
const fields = JSON.parse(fs.readFileSync(path.join(official, 'fields.json'), 'utf8')) as Json;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-official-'));
const readJson = (file: string): Json => JSON.parse(fs.readFileSync(file, 'utf8')) as Json;

let checkpoint = '';
let sourceTokenizer = '';

before(async () => {
  await initEngine();
  sourceTokenizer = path.join(tmp, 'tokenizer');
  // the data folder's tokenizer says 64 ids; the model's text tower takes 32 (tiny preset)
  await writeWordTokenizer(sourceTokenizer, synthVocabulary(), { contextLength: 64 });
  const model = randomModel(presetConfig('tiny'), 1);
  checkpoint = await saveCheckpoint(path.join(tmp, 'run'), model, new AdamW(), { step: 0, samplesSeen: 0, optimizerStep: 0, options: {} }, sourceTokenizer);
  model.weights.dispose();
});

test('config.json sets every field of the official vision and text configs, to the model\'s values', () => {
  const written = readJson(path.join(checkpoint, 'config.json'));
  assert.equal(written['model_type'], 'ps3');
  const radioOnly = new Set(fields['radio_only'] as string[]);
  for (const part of ['vision_config', 'text_config'] as const) {
    for (const key of Object.keys(fields[part] as Json)) {
      if (radioOnly.has(key)) continue;
      assert.ok(key in written[part], `${part}.${key} is missing, so the official default ${JSON.stringify(fields[part][key])} would apply`);
    }
  }
  const v = written['vision_config'];
  const tiny = presetConfig('tiny');
  assert.equal(v.pool, 'map');
  assert.equal(v.hidden_size, 128);
  assert.equal(v.img_size, 378);
  assert.equal(v.class_token, false);
  assert.equal(v.dynamic_img_size, true);
  assert.equal(v.radio, false);
  assert.equal(v.pretrained, false);
  assert.deepEqual(v.ps3_scales, [378, 756, 1512, 3780]);
  assert.deepEqual(v.select_based_on_layer, [1, 3]);
  assert.equal(v.max_select_num, 640);
  assert.equal(v.highres_selection_module_hidden_dim, 32);
  assert.equal(v.highres_selection_module_depth, 1);
  assert.equal(v.trunk.embed_dim, 128);
  const t = written['text_config'];
  assert.equal(t.context_length, 32);
  assert.equal(t.output_dim, 128);
  assert.equal(t.prompt_proj_dim, 128);
  assert.equal(t.width, 128);
  assert.equal(t.layers, 2);
  assert.equal(t.heads, 4);
  assert.equal(t.vocab_size, 4096);
  assert.equal(t.pool_type, 'argmax');
  assert.equal(t.no_causal_mask, false);
  assert.equal(t.proj_bias, true);
  assert.deepEqual(t.norm_kwargs, { eps: 1e-6 });
  assert.deepEqual(t.act_kwargs, {});
  assert.deepEqual(t.tokenizer_kwargs, { clean: 'canonicalize' });
  assert.ok((fields['tokenizer']['clean_values'] as string[]).includes(t.tokenizer_kwargs.clean));
  // read back, it is the same model
  const back = parseConfig(written, 'written config.json');
  assert.deepEqual(back.vision, tiny.vision);
  assert.deepEqual(back.text, tiny.text);
});

test('preprocessor_config.json holds exactly the official PS3ImageProcessor arguments', () => {
  const written = readJson(path.join(checkpoint, 'preprocessor_config.json'));
  assert.deepEqual(Object.keys(written).sort(), [...(fields['image_processor']['accepted_keys'] as string[])].sort());
  assert.deepEqual(written, { image_size: 3780, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], interpolation: 'bicubic', resize_mode: 'squash' });
});

test('tokenizer_config.json names the folder itself, with the text tower\'s context length and cleaning', async () => {
  const written = readJson(path.join(checkpoint, 'tokenizer_config.json'));
  assert.equal(written['tokenizer_name'], path.resolve(checkpoint));
  assert.equal(written['context_length'], 32);
  assert.equal(written['model_max_length'], 32);
  assert.equal(written['clean'], 'canonicalize');
  assert.equal(written['tokenizer_class'], 'PreTrainedTokenizerFast');
  // transformers checks listed added tokens against PS3Tokenizer.vocab_size, which it lacks
  assert.ok(!('added_tokens_decoder' in written));
  assert.deepEqual(readJson(path.join(checkpoint, 'tokenizer.json'))['added_tokens'], []);
  // the folder tokenizes exactly as the tokenizer it came from
  const texts = ['A red stop sign, top left!', 'the K3 sign near 23 boxes', ''];
  const a = await loadTokenizer(sourceTokenizer, { contextLength: 32, clean: 'canonicalize' });
  const b = await loadTokenizer(checkpoint, { contextLength: 32, clean: 'canonicalize' });
  assert.deepEqual(b.encode(texts), a.encode(texts));
  assert.equal(b.padId, a.padId);
});

test('the written folder loads here as a model with its processor', () => {
  const model = loadModel(checkpoint);
  assert.deepEqual(imageProcessor(model), { size: 3780, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  model.weights.dispose();
});

test('a folder as the official export writes it loads here', async () => {
  const dir = path.join(tmp, 'export');
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(path.join(official, 'export'))) fs.copyFileSync(path.join(official, 'export', f), path.join(dir, f));
  const config = parseConfig(readJson(path.join(dir, 'config.json')));
  const random = randomModel(config, 2);
  const arrays = new Map<string, NamedArray>();
  for (const [k, t] of random.weights.entries()) arrays.set(k, { shape: t.shape, data: t.dataSync() as Float32Array });
  writeSafetensors(path.join(dir, 'model.safetensors'), arrays, { format: 'pt' });
  random.weights.dispose();
  const model = loadModel(dir);
  assert.equal(model.config.vision.trunk.width, 32);
  assert.deepEqual(model.config.vision.scales, [56, 112, 224, 560]);
  assert.equal(model.config.vision.convnet.kernel, 28);
  assert.deepEqual(imageProcessor(model), { size: 560, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  model.weights.dispose();
  // the export names a Hub tokenizer and ships no tokenizer.json: the error says so
  await assert.rejects(loadTokenizer(dir, { contextLength: 8 }), (e: unknown) => isUserError(e) && /timm\/ViT-B-16-SigLIP/.test((e as Error).message));
});

test('preprocessor_config.json is read in both layouts, with the official defaults', () => {
  assert.deepEqual(parsePreprocessor({ size: { height: 756, width: 756 }, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], resample: 3 }, 3780), { size: 756, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  // the official processor falls back to OpenAI CLIP's mean and std, and repeats a single number
  const defaults = fields['image_processor']['defaults'];
  assert.deepEqual(parsePreprocessor({ image_size: 378 }, 3780), { size: 378, mean: defaults.mean, std: defaults.std });
  assert.deepEqual(parsePreprocessor({ image_size: [378, 378], mean: 0.5, std: 0.25 }, 3780), { size: 378, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
  const refused = (json: Json, pattern: RegExp): void => assert.throws(() => parsePreprocessor(json, 3780, 'p.json'), (e: unknown) => isUserError(e) && pattern.test((e as Error).message));
  refused({ image_size: 378, interpolation: 'bilinear' }, /p\.json: interpolation "bilinear"/);
  refused({ image_size: 378, resize_mode: 'shortest' }, /resize_mode "shortest"/);
  refused({ image_size: [378, 756] }, /only a square size/);
  refused({ image_size: 378, mean: [0.5, 0.5] }, /mean must be a number or a list of 3 numbers/);
  refused({ size: { height: 378, width: 378 }, resample: 2 }, /resample 2/);
  // a folder without the file gets PS3's processor at its top scale
  assert.deepEqual(readPreprocessor(tmp, 1512), { size: 1512, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
});

test('vision_config fields the project cannot honour are refused, naming the field', () => {
  const base = readJson(path.join(official, 'export', 'config.json'));
  const refused = (patch: Json, pattern: RegExp): void => {
    const json = structuredClone(base);
    Object.assign(json['vision_config'], patch);
    assert.throws(() => parseConfig(json, 'c.json'), (e: unknown) => isUserError(e) && pattern.test((e as Error).message));
  };
  refused({ pool: 'avg' }, /c\.json: vision_config\.pool "avg".*"map"/);
  refused({ pool: 'token' }, /vision_config\.pool "token"/);
  refused({ class_token: true }, /vision_config\.class_token/);
  refused({ dynamic_img_size: false }, /vision_config\.dynamic_img_size/);
  refused({ hidden_size: 1152 }, /vision_config\.hidden_size 1152 does not match the trunk width 32/);
  // absent pool is what every PS3 checkpoint means: MAP
  const json = structuredClone(base);
  delete json['vision_config']['pool'];
  assert.equal(parseConfig(json).vision.trunk.width, 32);
});
