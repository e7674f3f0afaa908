import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/rng.js';
import { cleanCaption, maskSentences, splitSentences } from '../../src/train/captions.js';

test('cleanCaption drops boiler-plate openings and keeps the content, capitalised', () => {
  const cases: Array<[string, string]> = [
    ['The second image is a close-up of a red car parked on the street.', 'A red car parked on the street.'],
    ['The image shows a dog running on grass.', 'A dog running on grass.'],
    ['This is a close-up view of a circuit board with green traces.', 'A circuit board with green traces.'],
    ['In this close-up, a woman holds a cup.', 'A woman holds a cup.'],
    ['In this image we can see two boats.', 'Two boats.'],
    ['A close-up shot of the engine bay.', 'The engine bay.'],
    ['Close-up of a rusty padlock.', 'A rusty padlock.'],
    ['This picture depicts a zoomed-in view of a map.', 'A map.'],
    ['The first image shows the top of a building.', 'The top of a building.'],
    ['The third photo is a detailed view of a bird.', 'A bird.'],
    ['The image shows a close-up view of moss on a rock.', 'Moss on a rock.'],
  ];
  for (const [input, expected] of cases) assert.equal(cleanCaption(input), expected, input);
});

test('cleanCaption drops a last sentence about visible text', () => {
  const cases: Array<[string, string]> = [
    ['A dog running. There is no visible text.', 'A dog running.'],
    ['A shop front with a blue door. The text reads "OPEN 24 HOURS".', 'A shop front with a blue door.'],
    ['Roads are shown in yellow. No text is visible in the image.', 'Roads are shown in yellow.'],
    ['A mug on a desk. The image does not contain any text.', 'A mug on a desk.'],
    ['A poster on a wall. The visible text on the poster says "Concert".', 'A poster on a wall.'],
    ['A sign. There is some text visible at the top.', 'A sign.'],
    // both clean-ups at once
    ['The second image is a close-up of a label. The text reads "Organic".', 'A label.'],
  ];
  for (const [input, expected] of cases) assert.equal(cleanCaption(input), expected, input);
});

test('cleanCaption leaves content alone', () => {
  const keep = [
    'A red car parked on the street. Two people walk by.',
    // the only sentence stays, even about text
    'There is no visible text.',
    // not the last sentence
    'The text reads STOP. A red sign on a pole.',
    'The image of a cat hangs on the wall.',
  ];
  for (const text of keep) assert.equal(cleanCaption(text), text);
  assert.equal(cleanCaption('  A   cat \n on a mat. '), 'A cat on a mat.');
});

test('splitSentences: punctuation, quotes, abbreviations and decimals', () => {
  assert.deepEqual(splitSentences('Dr. Smith stands by the door. He waves! Is it 5.30? Yes.'), [
    'Dr. Smith stands by the door.',
    'He waves!',
    'Is it 5.30?',
    'Yes.',
  ]);
  assert.deepEqual(splitSentences('The sign says "OPEN." A man waits, e.g. for a bus.'), ['The sign says "OPEN."', 'A man waits, e.g. for a bus.']);
  assert.deepEqual(splitSentences('No full stop at the end'), ['No full stop at the end']);
  assert.deepEqual(splitSentences(''), []);
});

/** The sentences a masked caption kept, as indices into S0. S1. ... */
function keptIndices(masked: string): number[] {
  return masked.split(' ').map((s) => Number(/^S(\d+)\.$/.exec(s)![1]));
}

test('maskSentences keeps a contiguous run: start uniform in the first three, length uniform over the rest', () => {
  const text = 'S0. S1. S2. S3. S4.';
  const rng = new Rng(7);
  const draws = 30000;
  const starts = [0, 0, 0];
  const lengthsFrom: number[][] = [[], [], []];
  for (let i = 0; i < draws; i++) {
    const kept = keptIndices(maskSentences(text, rng));
    kept.forEach((k, j) => assert.equal(k, kept[0]! + j, 'contiguous'));
    const start = kept[0]!;
    assert.ok(start <= 2, `start ${start} beyond the first three`);
    starts[start]!++;
    lengthsFrom[start]!.push(kept.length);
  }
  for (const n of starts) assert.ok(Math.abs(n / draws - 1 / 3) < 0.02, `start frequencies ${starts}`);
  // Length uniform in 1..(5 - start): e.g. from start 2, lengths 1, 2, 3 each a third.
  lengthsFrom.forEach((lengths, start) => {
    const max = 5 - start;
    for (let len = 1; len <= max; len++) {
      const share = lengths.filter((l) => l === len).length / lengths.length;
      assert.ok(Math.abs(share - 1 / max) < 0.03, `start ${start} length ${len}: ${share}`);
    }
    assert.ok(Math.max(...lengths) === max);
  });
});

test('maskSentences: short captions and determinism', () => {
  assert.equal(maskSentences('Only one sentence.', new Rng(1)), 'Only one sentence.');
  const seen = new Set<string>();
  const rng = new Rng(3);
  for (let i = 0; i < 200; i++) seen.add(maskSentences('S0. S1.', rng));
  assert.deepEqual([...seen].sort(), ['S0.', 'S0. S1.', 'S1.']);
  const a = Array.from({ length: 20 }, (_, i) => maskSentences('S0. S1. S2. S3.', new Rng(i)));
  const b = Array.from({ length: 20 }, (_, i) => maskSentences('S0. S1. S2. S3.', new Rng(i)));
  assert.deepEqual(a, b);
});
