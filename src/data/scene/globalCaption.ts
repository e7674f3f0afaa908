/** The global caption of a scene: counts of shapes and signs, the main colours, the commonest look. */
import type { Rng } from '../../rng.js';
import type { Background } from './background.js';
import { COLOUR_NAMES, luminance, type ColourName } from './colours.js';
import { CAPTION_GRAMMAR, fill, NUMBER_WORDS } from './grammar.js';
import { PLURAL } from './shapes.js';
import type { SceneObject, ShapeObject } from './types.js';

export function globalCaption(rng: Rng, objects: readonly SceneObject[], background: Background): string {
  const g = CAPTION_GRAMMAR;
  const shapes = objects.filter((o): o is ShapeObject => o.kind === 'shape');
  const signs = objects.length - shapes.length;
  const l = luminance(background.mean);
  const tone = l > 150 ? 'light' : l < 90 ? 'dark' : 'muted';
  let first = fill(rng.pick(g.global), { n: String(shapes.length), m: String(signs), tone });
  // the templates say "shapes"/"signs"; a count of one takes the singular
  if (shapes.length === 1) first = first.replace(/\b1 small shapes\b/, '1 small shape');
  if (signs === 1) first = first.replace(/\b1 signs\b/, '1 sign');
  const sentences = [first];

  const colourCount = new Map<ColourName, number>();
  for (const o of objects) colourCount.set(o.colour, (colourCount.get(o.colour) ?? 0) + 1);
  const ranked = COLOUR_NAMES.filter((c) => colourCount.has(c)).sort((a, b) => colourCount.get(b)! - colourCount.get(a)!);
  if (ranked.length >= 2) sentences.push(fill(rng.pick(g.globalColours), { colour: ranked[0]!, otherColour: ranked[1]! }));

  // the most frequent look (shape and colour), counted exactly
  const looks = new Map<string, ShapeObject[]>();
  for (const s of shapes) looks.set(`${s.colour} ${s.shape}`, [...(looks.get(`${s.colour} ${s.shape}`) ?? []), s]);
  const top = [...looks.values()].sort((a, b) => b.length - a.length)[0];
  if (top !== undefined && top.length <= 9) {
    const [many, holds, one] = g.globalCount;
    const slots = { count: NUMBER_WORDS[top.length]!, colour: top[0]!.colour, shapes: PLURAL[top[0]!.shape], shape: top[0]!.shape };
    sentences.push(fill(top.length === 1 ? one : rng.pick([many, holds]), slots));
  }
  if (background.grid) sentences.push(rng.pick(g.globalGrid));
  return `${sentences.join('. ')}.`;
}
