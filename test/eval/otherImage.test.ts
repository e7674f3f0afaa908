/** The image-swap control: each question moves to another of the benchmark's images, every image still used, its own evidence gone. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBenchmark } from '../../src/eval/qa/format.js';
import { withOtherImages } from '../../src/eval/qa/otherImage.js';
import { isUserError } from '../../src/errors.js';

const line = (id: string, image: string, size: number): string =>
  JSON.stringify({ id, image, question: 'How many?', options: ['1', '2'], answer: 0, category: 'counting', image_size: [size, size], evidence: { object_ids: [1], box: [0, 0, 4, 4], detail_px_at_lowres: 1, lowres: 8 } });

test('withOtherImages: every question gets another image, the images are permuted, the evidence is dropped', () => {
  const images = ['a.png', 'b.png', 'c.png', 'd.png', 'e.png'];
  const items = parseBenchmark(images.flatMap((im, i) => [line(`${i}-x`, im, 10 + i), line(`${i}-y`, im, 10 + i)]).join('\n'), '/bench/questions.jsonl');
  const swapped = withOtherImages(items);
  assert.equal(swapped.length, items.length);
  swapped.forEach((s, i) => {
    const own = items[i]!;
    assert.notEqual(s.imagePath, own.imagePath);
    assert.equal(s.id, own.id);
    assert.equal(s.question, own.question);
    assert.equal(s.evidence, undefined);
    assert.equal(s.image_size[0], 10 + images.indexOf(s.image), 'the size goes with the image');
  });
  // the two questions of one image move together, and every image is still asked about
  for (let i = 0; i < items.length; i += 2) assert.equal(swapped[i]!.imagePath, swapped[i + 1]!.imagePath);
  assert.deepEqual([...new Set(swapped.map((s) => s.image))].sort(), images);
});

test('withOtherImages needs two images', () => {
  const items = parseBenchmark([line('0', 'a.png', 8), line('1', 'a.png', 8)].join('\n'), '/bench/questions.jsonl');
  assert.throws(() => withOtherImages(items), (e: unknown) => isUserError(e) && /needs questions on two or more images; these 2 are on 1/.test(e.message));
});
