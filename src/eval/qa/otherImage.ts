/**
 * The image-swap control: every question asked of another scene's image. An answerer that reads
 * the image falls towards chance (its answers are about the wrong scene); one that answers from
 * the question and options alone — priors the training questions taught it — scores as before.
 * So accuracy with the right image minus accuracy with another is what the image gave.
 */
import { UserError } from '../../errors.js';
import type { BenchItem } from './format.js';

/**
 * Each item with the image (and its size) of the distinct image half-way round the sorted list of
 * the benchmark's images; the evidence goes (its box is on the question's own image).
 */
export function withOtherImages(items: readonly BenchItem[]): BenchItem[] {
  const images = [...new Map(items.map((it) => [it.imagePath, it])).values()].sort((a, b) => (a.imagePath < b.imagePath ? -1 : 1));
  if (images.length < 2) throw new UserError(`--other-image needs questions on two or more images; these ${items.length} are on ${images.length}`);
  const shift = Math.ceil(images.length / 2);
  const index = new Map(images.map((it, i) => [it.imagePath, i]));
  return items.map(({ evidence: _own, ...item }) => {
    const other = images[(index.get(item.imagePath)! + shift) % images.length]!;
    return { ...item, image: other.image, imagePath: other.imagePath, image_size: other.image_size };
  });
}
