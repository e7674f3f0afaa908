/**
 * Tests for src/io/tokenizer.ts against two hand-written tokenizers in test/data/tokenizers/:
 *   siglip-unigram: SentencePiece Unigram laid out as open_clip saves SigLIP's (T5TokenizerFast,
 *     Metaspace, post-processor "$A </s>", pad_token "</s>" = 1). Whole-word pieces score -3..-5,
 *     single letters -8, so a word in the vocabulary is always one piece and the ids below
 *     follow by reading the vocab.
 *   gemma-bpe: byte-fallback BPE laid out like Gemma's (spaces → "▁", no pre-tokenizer,
 *     "<bos> $A", pad "<pad>" = 0); the merges only build the words used below.
 * Neither `tokenizers` nor `transformers` is installed for /usr/bin/python3, so expected ids were
 * derived by hand from those vocabularies. The canonicalize cases marked "Python" were produced
 * with Python 3.11's stdlib (open_clip's canonicalize_text over html.unescape twice, inputs on
 * which ftfy changes nothing); the ftfy cases follow ftfy 6's tables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalize, loadTokenizer } from '../../src/io/tokenizer.js';
import { UserError } from '../../src/errors.js';

// Compiled to dist/test/io/, so the sources' data folder is three levels up.
const DATA = fileURLToPath(new URL('../../../test/data/tokenizers/', import.meta.url));
const SIGLIP = join(DATA, 'siglip-unigram');
const GEMMA = join(DATA, 'gemma-bpe');

// siglip-unigram ids
const U = { pad: 0, eos: 1, unk: 2, sp: 3, a: 4, photo: 5, of: 6, cat: 7, two: 10, s: 11, on: 14, the: 9, mat: 15, its: 16, cafe: 17 };
// gemma-bpe ids
const G = { pad: 0, eos: 1, bos: 2, unk: 3, c: 6, f: 13, a: 5, catW: 18, dogW: 21, aW: 15, ofW: 23, photoW: 28, xC3: 29, xA9: 30 };

function rows(ids: Int32Array, width: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < ids.length; i += width) out.push(Array.from(ids.subarray(i, i + width)));
  return out;
}

/** A copy of a fixture folder with some JSON files rewritten (null deletes the file). */
async function variant(from: string, edits: Record<string, (json: Record<string, unknown>) => Record<string, unknown> | null>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ps3-tokenizer-'));
  await cp(from, dir, { recursive: true });
  for (const [name, edit] of Object.entries(edits)) {
    const path = join(dir, name);
    const next = edit(JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>);
    if (next === null) await rm(path);
    else await writeFile(path, JSON.stringify(next));
  }
  return dir;
}

async function withVariant(from: string, edits: Parameters<typeof variant>[1], body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await variant(from, edits);
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function without(json: Record<string, unknown>, ...keys: string[]): Record<string, unknown> {
  const out = { ...json };
  for (const k of keys) delete out[k];
  return out;
}

/** Rejects with a one-line UserError whose message contains every `parts`. */
async function rejectsWith(promise: Promise<unknown>, ...parts: string[]): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `message is not one line: ${e.message}`);
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" does not mention "${p}"`);
    return true;
  });
}

// ------------------------------------------------------------------------------------------
// canonicalize

test('canonicalize matches open_clip canonicalize_text (Python-checked cases)', () => {
  const cases: [string, string][] = [
    ['A photo of a CAT.', 'a photo of a cat'],
    ['  Hello,   World!  ', 'hello world'],
    ['snake_case_name', 'snake case name'],
    [
      'it\'s (really) 100% [fine]; ok? {yes} <no> @home #1 $5 ^_^ `x` ~y~ a|b a\\b a/b a-b a+b=c a*b "q"',
      'its really 100 fine ok yes no home 1 5 x y ab ab ab ab abc ab q',
    ],
    ['tab\tnew\nline\r\nff\fend', 'tab new line ff end'],
    ['nbsp\u00a0em\u2003ideo\u3000thin\u2009end', 'nbsp em ideo thin end'],
    // U+200B is not whitespace to Python either; it stays
    ['zero\u200bwidth', 'zero\u200bwidth'],
    ['Ünïcödé ÇAFÉ ΟΔΟΣ İstanbul', 'ünïcödé çafé οδος i\u0307stanbul'],
    // string.punctuation is ASCII only: « » – … ¿ ¡ survive
    ['«guillemets» – dash … ellipsis ¿qué? ¡sí!', '«guillemets» – dash … ellipsis ¿qué ¡sí'],
    ['Tom &amp; Jerry &lt;3 &#39;quoted&#39; &#x41;BC &amp;amp; &amp', 'tom jerry 3 quoted abc'],
    ['...!!!', ''],
    ['', ''],
  ];
  for (const [input, expected] of cases) assert.equal(canonicalize(input), expected, JSON.stringify(input));
});

test('canonicalize applies ftfy.fix_text tables before canonicalizing', () => {
  const cases: [string, string][] = [
    // uncurl_quotes: U+2018-U+201B and U+02BC → ', U+201C-U+201F → "; both then dropped
    ['It\u2019s \u201cgreat\u201d \u2018ok\u2019 \u02bcn', 'its great ok n'],
    // fix_character_width: fullwidth forms and U+3000
    ['ＨＥＬＬＯ，ｗｏｒｌｄ！\u3000ｘ', 'helloworld x'],
    // fix_latin_ligatures
    ['\ufb01ne \ufb02our \ufb00', 'fine flour ff'],
    // NFC: a decomposed é composes
    ['Cafe\u0301', 'café'],
    // remove_control_chars drops these before Python's split() could treat U+001F as a space
    ['a\u001fb\u000bc\ufeffd\u007fe', 'abcde'],
    // remove_terminal_escapes
    ['\u001b[31mred\u001b[0m text', 'red text'],
    // fix_c1_controls: U+0085 read as windows-1252 is "…" (not ASCII punctuation, so kept)
    ['nel\u0085sep', 'nel…sep'],
    // ftfy unescapes, then uncurls: &#x2019; → ’ → '
    ['x&#x2019;s', 'xs'],
    // ...but not once a line has '<': html.unescape still runs, after uncurling
    ['<b>x&#x2019;s</b>', 'bx\u2019sb'],
    // ftfy's pass needs ';', so this ’ only appears in html.unescape, after uncurling
    ['x&#8217s', 'x\u2019s'],
  ];
  for (const [input, expected] of cases) assert.equal(canonicalize(input), expected, JSON.stringify(input));
});

// ------------------------------------------------------------------------------------------
// SigLIP-like Unigram

test('Unigram: pads with </s>, appends </s>, keeps batch rows in order', async () => {
  const tok = await loadTokenizer(SIGLIP, { contextLength: 8 });
  assert.equal(tok.contextLength, 8);
  assert.equal(tok.padId, U.eos);
  const ids = tok.encode(['A photo of a cat.', 'Two cats on the mat!', 'Café', 'a zz cat', '']);
  assert.ok(ids instanceof Int32Array);
  assert.equal(ids.length, 5 * 8);
  assert.deepEqual(rows(ids, 8), [
    [U.a, U.photo, U.of, U.a, U.cat, U.eos, U.eos, U.eos],
    // no "▁cats" piece: "▁cat" + "s"
    [U.two, U.cat, U.s, U.on, U.the, U.mat, U.eos, U.eos],
    [U.cafe, U.eos, U.eos, U.eos, U.eos, U.eos, U.eos, U.eos],
    // 'z' is not in the vocab: "▁" then one fused <unk> for "zz"
    [U.a, U.sp, U.unk, U.cat, U.eos, U.eos, U.eos, U.eos],
    // nothing left after cleaning: only the post-processor's </s>
    [U.eos, U.eos, U.eos, U.eos, U.eos, U.eos, U.eos, U.eos],
  ]);
  assert.equal(tok.encode([]).length, 0);
});

test('Unigram: truncation keeps the first ids and still ends in </s>', async () => {
  const tok = await loadTokenizer(SIGLIP, { contextLength: 4 });
  assert.deepEqual(rows(tok.encode(['a photo of a cat', 'a photo of']), 4), [
    [U.a, U.photo, U.of, U.eos],
    [U.a, U.photo, U.of, U.eos],
  ]);
  // room for the </s> alone
  const one = await loadTokenizer(SIGLIP, { contextLength: 1 });
  assert.deepEqual(Array.from(one.encode(['a photo'])), [U.eos]);
});

test('clean modes: canonicalize by default, lower keeps punctuation, none keeps case', async () => {
  const canon = await loadTokenizer(SIGLIP, { contextLength: 4 });
  assert.deepEqual(Array.from(canon.encode(['It\u2019s A cat!'])), [U.its, U.a, U.cat, U.eos]);
  // '!' survives 'lower' and is not in the vocab: <unk>
  const lower = await loadTokenizer(SIGLIP, { contextLength: 4, clean: 'lower' });
  assert.deepEqual(Array.from(lower.encode(['A   CAT!'])), [U.a, U.cat, U.unk, U.eos]);
  // "▁A" is no piece: "▁" + unknown "A"; whitespace still collapses
  const none = await loadTokenizer(SIGLIP, { contextLength: 4, clean: 'none' });
  assert.deepEqual(Array.from(none.encode(['A   cat'])), [U.sp, U.unk, U.cat, U.eos]);
});

test('pad id: tokenizer files first, the caller\'s pad id as fallback, else an error', async () => {
  // legacy load path (no added_tokens_decoder): special_tokens_map.json overrides the config
  await withVariant(SIGLIP, {
    'tokenizer_config.json': (c) => without(c, 'added_tokens_decoder'),
    'special_tokens_map.json': (m) => ({ ...m, pad_token: '<pad>' }),
  }, async (dir) => {
    assert.equal((await loadTokenizer(dir, { contextLength: 4 })).padId, U.pad);
  });
  // with added_tokens_decoder transformers ignores special_tokens_map.json
  await withVariant(SIGLIP, {
    'special_tokens_map.json': (m) => ({ ...m, pad_token: '<pad>' }),
  }, async (dir) => {
    assert.equal((await loadTokenizer(dir, { contextLength: 4 })).padId, U.eos);
  });
  // tokenizer.json's padding.pad_token when no config names one
  await withVariant(SIGLIP, {
    'tokenizer_config.json': (c) => without(c, 'pad_token'),
    'special_tokens_map.json': () => null,
    'tokenizer.json': (t) => ({ ...t, padding: { strategy: 'BatchLongest', direction: 'Right', pad_to_multiple_of: null, pad_id: 0, pad_type_id: 0, pad_token: '<pad>' } }),
  }, async (dir) => {
    assert.equal((await loadTokenizer(dir, { contextLength: 4, padId: 7 })).padId, U.pad);
  });
  await withVariant(SIGLIP, {
    'tokenizer_config.json': (c) => without(c, 'pad_token'),
    'special_tokens_map.json': () => null,
  }, async (dir) => {
    const tok = await loadTokenizer(dir, { contextLength: 4, padId: 0 });
    assert.equal(tok.padId, 0);
    assert.deepEqual(Array.from(tok.encode(['a cat'])), [U.a, U.cat, U.eos, 0]);
    await rejectsWith(loadTokenizer(dir, { contextLength: 4 }), 'tokenizer_config.json', 'pad');
  });
  await withVariant(SIGLIP, { 'tokenizer_config.json': (c) => ({ ...c, pad_token: '[PAD]' }) }, async (dir) => {
    await rejectsWith(loadTokenizer(dir, { contextLength: 4 }), 'tokenizer.json', '[PAD]', 'vocabulary');
  });
});

test('padding_side and truncation_side from tokenizer_config.json', async () => {
  await withVariant(SIGLIP, {
    'tokenizer_config.json': (c) => ({ ...c, padding_side: 'left', truncation_side: 'left' }),
  }, async (dir) => {
    const tok = await loadTokenizer(dir, { contextLength: 4 });
    assert.deepEqual(rows(tok.encode(['a cat', 'a photo of a cat']), 4), [
      [U.eos, U.a, U.cat, U.eos],
      // left truncation keeps the last ids
      [U.of, U.a, U.cat, U.eos],
    ]);
  });
  await withVariant(SIGLIP, { 'tokenizer_config.json': (c) => ({ ...c, padding_side: 'middle' }) }, async (dir) => {
    await rejectsWith(loadTokenizer(dir, { contextLength: 4 }), 'tokenizer_config.json', 'padding_side');
  });
});

// ------------------------------------------------------------------------------------------
// Gemma-like BPE

test('BPE: <bos> first, byte fallback, fused <unk>, <pad> = 0 on the right', async () => {
  const tok = await loadTokenizer(GEMMA, { contextLength: 8 });
  assert.equal(tok.padId, G.pad);
  // no prepended "▁": the first word is bare ("a"), later ones start with "▁"
  assert.deepEqual(rows(tok.encode(['A photo of a cat.', 'café', 'zz', '']), 8), [
    [G.bos, G.a, G.photoW, G.ofW, G.aW, G.catW, G.pad, G.pad],
    [G.bos, G.c, G.a, G.f, G.xC3, G.xA9, G.pad, G.pad],
    [G.bos, G.unk, G.pad, G.pad, G.pad, G.pad, G.pad, G.pad],
    [G.bos, G.pad, G.pad, G.pad, G.pad, G.pad, G.pad, G.pad],
  ]);
  const short = await loadTokenizer(GEMMA, { contextLength: 3 });
  assert.deepEqual(Array.from(short.encode(['a photo of a dog'])), [G.bos, G.a, G.photoW]);
});

test('BPE: GemmaTokenizer flags rebuild the specials (SigLIP2: no <bos>, final <eos>)', async () => {
  await withVariant(GEMMA, {
    'tokenizer_config.json': (c) => ({ ...c, add_bos_token: false, add_eos_token: true }),
  }, async (dir) => {
    const tok = await loadTokenizer(dir, { contextLength: 4 });
    assert.deepEqual(rows(tok.encode(['a dog', 'a photo of a cat']), 4), [
      [G.a, G.dogW, G.eos, G.pad],
      [G.a, G.photoW, G.ofW, G.eos],
    ]);
  });
  // GemmaTokenizerFast pads on the left unless the config says otherwise
  await withVariant(GEMMA, { 'tokenizer_config.json': (c) => without(c, 'padding_side') }, async (dir) => {
    const tok = await loadTokenizer(dir, { contextLength: 4 });
    assert.deepEqual(Array.from(tok.encode(['a dog'])), [G.pad, G.bos, G.a, G.dogW]);
  });
});

test('context length shorter than the special tokens is refused', async () => {
  await withVariant(GEMMA, {
    'tokenizer_config.json': (c) => ({ ...c, add_eos_token: true }),
  }, async (dir) => {
    await rejectsWith(loadTokenizer(dir, { contextLength: 1 }), 'tokenizer.json', 'context length 1');
  });
  await rejectsWith(loadTokenizer(GEMMA, { contextLength: 0 }), 'context length');
  await rejectsWith(loadTokenizer(join(DATA, 'no-such-folder'), { contextLength: 2.5 }), 'context length');
});

// ------------------------------------------------------------------------------------------
// Files

test('missing or malformed files are one-line UserErrors naming the file', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'ps3-tokenizer-'));
  try {
    await rejectsWith(loadTokenizer(empty, { contextLength: 4 }), join(empty, 'tokenizer.json'), 'not found');
    // PS3Tokenizer.save_pretrained's config only names the Hugging Face tokenizer
    await writeFile(join(empty, 'tokenizer_config.json'), JSON.stringify({ tokenizer_name: 'timm/ViT-SO400M-14-SigLIP-384', context_length: 64, clean: 'canonicalize' }));
    await rejectsWith(loadTokenizer(empty, { contextLength: 4 }), 'tokenizer.json', 'not found', 'timm/ViT-SO400M-14-SigLIP-384');
    await writeFile(join(empty, 'tokenizer.json'), '{"model": {"type": "Unigram", ');
    await rejectsWith(loadTokenizer(empty, { contextLength: 4 }), join(empty, 'tokenizer.json'), 'malformed JSON');
    await writeFile(join(empty, 'tokenizer.json'), '[1, 2]');
    await rejectsWith(loadTokenizer(empty, { contextLength: 4 }), 'tokenizer.json', 'JSON object');
    await writeFile(join(empty, 'tokenizer.json'), '{"version": "1.0"}');
    await rejectsWith(loadTokenizer(empty, { contextLength: 4 }), 'tokenizer.json', '"model"');
    await writeFile(join(empty, 'tokenizer.json'), '{"model": {"type": "Mystery"}}');
    await rejectsWith(loadTokenizer(empty, { contextLength: 4 }), 'tokenizer.json', 'unsupported');
    const unigram = JSON.parse(await readFile(join(SIGLIP, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(empty, 'tokenizer.json'), JSON.stringify({ ...unigram, post_processor: { type: 'TemplateProcessing' } }));
    await rejectsWith(loadTokenizer(empty, { contextLength: 4, padId: 0 }), 'tokenizer.json', 'post_processor');
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
  await withVariant(SIGLIP, {}, async (dir) => {
    await writeFile(join(dir, 'tokenizer_config.json'), '{"pad_token": "</s>",}');
    await rejectsWith(loadTokenizer(dir, { contextLength: 4 }), join(dir, 'tokenizer_config.json'), 'malformed JSON');
  });
  await withVariant(SIGLIP, {}, async (dir) => {
    await writeFile(join(dir, 'special_tokens_map.json'), 'null');
    await rejectsWith(loadTokenizer(dir, { contextLength: 4 }), 'special_tokens_map.json', 'JSON object');
  });
});

test('only tokenizer.json is required', async () => {
  await withVariant(SIGLIP, { 'tokenizer_config.json': () => null, 'special_tokens_map.json': () => null }, async (dir) => {
    const tok = await loadTokenizer(dir, { contextLength: 4, padId: 1 });
    assert.deepEqual(Array.from(tok.encode(['a cat'])), [U.a, U.cat, U.eos, 1]);
  });
});
