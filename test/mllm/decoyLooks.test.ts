/** Decoy looks (src/mllm/decoyLooks.ts): which samples read another question's look, and whose. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { qaLooksByImage, withDecoyLook } from '../../src/mllm/decoyLooks.js';
import type { TrainQuestion } from '../../src/mllm/trainData.js';

const question = (image: number, index: number, target?: string): TrainQuestion => ({
  image, index, question: 'What?', options: target === undefined ? ['a', 'b'] : [], answer: target === undefined ? 0 : -1, category: target === undefined ? 'attribute' : 'caption', box: [0, 0, 1, 1],
  ...(target !== undefined ? { target } : {}),
});

// image 0: three questions; image 1: one question (and a caption, which has no look to swap)
const pool = [question(0, 0), question(0, 1), question(0, 2), question(1, 0), question(1, 1, 'a red sign')];
const looks = qaLooksByImage(pool);

test('the qa questions of each image, captions left out', () => {
  assert.deepEqual([...looks], [[0, [0, 1, 2]], [1, [0]]]);
});

test('a decoy reads another question of its own image; a scene with one question and a caption never decoy', () => {
  for (let k = 0; k < 200; k++) {
    const q = pool[k % 3]!;
    const d = withDecoyLook(q, looks, 5, k, 1);
    assert.notEqual(d.look, undefined, `sample ${k}`);
    assert.notEqual(d.look, q.index);
    assert.ok([0, 1, 2].includes(d.look!));
    assert.deepEqual({ ...d, look: undefined }, { ...q, look: undefined }, 'the question, options, answer and box stay its own');
    assert.equal(withDecoyLook(pool[3]!, looks, 5, k, 1), pool[3]);
    assert.equal(withDecoyLook(pool[4]!, looks, 5, k, 1), pool[4]);
  }
  assert.equal(withDecoyLook(pool[0]!, looks, 5, 0, 0), pool[0], 'a fraction of 0 changes nothing');
});

test('the share of decoys is the fraction asked, both other questions are drawn, and the draw is a function of the seed and the sample', () => {
  const n = 4000;
  const drawn = Array.from({ length: n }, (_, k) => withDecoyLook(pool[0]!, looks, 7, k, 0.3).look);
  const share = drawn.filter((l) => l !== undefined).length / n;
  assert.ok(Math.abs(share - 0.3) < 0.03, `share ${share}`);
  assert.ok(drawn.includes(1) && drawn.includes(2));
  assert.deepEqual(Array.from({ length: 50 }, (_, k) => withDecoyLook(pool[0]!, looks, 7, k, 0.3).look), drawn.slice(0, 50), 'the same seed draws the same decoys (a resume)');
  const other = Array.from({ length: 50 }, (_, k) => withDecoyLook(pool[0]!, looks, 8, k, 0.3).look);
  assert.notDeepEqual(other, drawn.slice(0, 50), 'another seed draws others');
});
