/**
 * Tests for src/data/wordTokenizer.ts: the vocabulary covers every caption the scenes produce,
 * and the written folder loads through src/io/tokenizer.ts with the ids it promises.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { renderScene } from '../../src/data/scene/render.js';
import { sceneRng } from '../../src/data/synth.js';
import { synthVocabulary, wordPieces, writeWordTokenizer } from '../../src/data/wordTokenizer.js';

const CONTEXT = 24;

async function withTokenizerDir(body: (dir: string, vocabulary: string[]) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ps3-word-tokenizer-'));
  try {
    const vocabulary = synthVocabulary();
    await writeWordTokenizer(dir, vocabulary, { contextLength: CONTEXT });
    await body(dir, vocabulary);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('the vocabulary: sorted, lower-case words, every digit and letter', () => {
  const v = synthVocabulary();
  assert.deepEqual(v, [...v].sort());
  assert.equal(new Set(v).size, v.length);
  for (const w of v) assert.match(w, /^[a-z]+$|^[0-9]$/);
  for (const ch of '0123456789abcdefghijklmnopqrstuvwxyz') assert.ok(v.includes(ch), ch);
  for (const w of ['red', 'triangles', 'crosses', 'left', 'reading', 'sign', 'an', 'three']) assert.ok(v.includes(w), w);
});

test('wordPieces: canonicalised words with digits split off', () => {
  assert.deepEqual(wordPieces('Two purple crosses near a white sign reading K3.'), ['two', 'purple', 'crosses', 'near', 'a', 'white', 'sign', 'reading', 'k', '3']);
  assert.deepEqual(wordPieces('23 small shapes; B17'), ['2', '3', 'small', 'shapes', 'b', '1', '7']);
});

test('every word of every caption of many scenes is in the vocabulary', () => {
  const vocabulary = new Set(synthVocabulary());
  for (let i = 0; i < 40; i++) {
    const scene = renderScene(sceneRng(3, i), { width: 160, height: 160 });
    for (const caption of [...scene.regions.map((r) => r.caption), scene.globalCaption]) {
      for (const word of wordPieces(caption)) assert.ok(vocabulary.has(word), `"${word}" of "${caption}"`);
    }
  }
});

test('the written tokenizer loads with loadTokenizer: word ids, [EOS] with the highest id, padding with [PAD] = 0', () => withTokenizerDir(async (dir, vocabulary) => {
  const tokenizer = await loadTokenizer(dir, { contextLength: CONTEXT });
  assert.equal(tokenizer.padId, 0);
  const id = (word: string): number => 2 + vocabulary.indexOf(word);
  const eos = 2 + vocabulary.length;
  const caption = 'Two purple crosses near a white sign reading K3';
  const ids = Array.from(tokenizer.encode([caption]));
  const expected = [...wordPieces(caption).map(id), eos];
  assert.equal(Math.max(...ids), eos, 'argmax pooling finds [EOS]');
  assert.deepEqual(ids, [...expected, ...new Array(CONTEXT - expected.length).fill(0)]);
  assert.ok(!ids.includes(1), 'no [UNK]');
}));

test('unknown words are [UNK]; long texts keep [EOS] last; many texts are row-major', () => withTokenizerDir(async (dir, vocabulary) => {
  const tokenizer = await loadTokenizer(dir, { contextLength: CONTEXT });
  const eos = 2 + vocabulary.length;
  const [unknown] = [Array.from(tokenizer.encode(['a zebra']))];
  assert.deepEqual(unknown!.slice(0, 3), [tokenizer.encode(['a'])[0], 1, eos]);
  const long = Array.from(tokenizer.encode([Array.from({ length: 40 }, () => 'red').join(' ')]));
  assert.equal(long.length, CONTEXT);
  assert.equal(long[CONTEXT - 1], eos);
  const two = tokenizer.encode(['red', 'blue']);
  assert.equal(two.length, 2 * CONTEXT);
  assert.deepEqual([two[0], two[1], two[CONTEXT + 1]], [tokenizer.encode(['red'])[0], eos, eos]);
}));

test('tokenizer files: WordLevel with [PAD], [UNK] first and [EOS] last, config naming the pad token', () => withTokenizerDir(async (dir, vocabulary) => {
  const json = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as { model: { type: string; vocab: Record<string, number>; unk_token: string } };
  assert.equal(json.model.type, 'WordLevel');
  assert.equal(json.model.unk_token, '[UNK]');
  assert.deepEqual([json.model.vocab['[PAD]'], json.model.vocab['[UNK]'], json.model.vocab['[EOS]']], [0, 1, vocabulary.length + 2]);
  assert.equal(Object.keys(json.model.vocab).length, vocabulary.length + 3);
  const config = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config['pad_token'], '[PAD]');
  assert.equal(config['model_max_length'], CONTEXT);
  await assert.rejects(writeWordTokenizer(dir, ['Red'], { contextLength: 8 }), RangeError);
  await assert.rejects(writeWordTokenizer(dir, ['red', 'red'], { contextLength: 8 }), RangeError);
}));
