/**
 * Local captions: every region a scene could be described by, and the few chosen for it.
 *
 * Everything a caption says is computed from the placed objects: a count ("three red
 * triangles") counts every object of that colour and shape touching the region's box, and a
 * region's box is the exact extent of the pixels of the objects it names.
 */
import type { Rng } from '../../rng.js';
import type { Box } from '../draw.js';
import { overlaps, union } from './boxes.js';
import { kindOf } from './characters.js';
import { CAPTION_GRAMMAR, fill, NUMBER_WORDS, RELATIONS } from './grammar.js';
import { PLURAL } from './shapes.js';
import type { RegionKind, SceneObject, SceneRegion, SignObject } from './types.js';

/** The words of one object for a relation caption (the `description` templates). */
function describe(rng: Rng, o: SceneObject): string {
  const [plain, marked, sign] = CAPTION_GRAMMAR.description;
  if (o.kind === 'sign') return fill(sign, { colour: o.colour, text: o.label });
  if (o.label !== null && rng.next() < 0.5) return fill(marked, { colour: o.colour, shape: o.shape, label: o.label });
  return fill(plain, { colour: o.colour, shape: o.shape });
}

/** Whether `describe` could give both objects the same words. */
function sameDescription(a: SceneObject, b: SceneObject): boolean {
  return a.kind === 'sign' ? b.kind === 'sign' && a.colour === b.colour && a.label === b.label : sameLook(a, b);
}

function sameLook(a: SceneObject, b: SceneObject): boolean {
  return a.kind === 'shape' && b.kind === 'shape' && a.shape === b.shape && a.colour === b.colour;
}

/**
 * Every object that looks like `like` (same shape and colour) touching the union of the given
 * objects' boxes, grown until no more touch: what a count over that box must include.
 */
function countClosure(objects: readonly SceneObject[], like: SceneObject, start: readonly SceneObject[]): { members: SceneObject[]; box: Box } {
  let box = union(start.map((o) => o.box));
  let members: SceneObject[] = [];
  for (;;) {
    const next = objects.filter((o) => sameLook(o, like) && overlaps(o.box, box));
    const grown = union([box, ...next.map((o) => o.box)]);
    if (next.length === members.length && grown.every((v, i) => v === box[i])) return { members: next, box };
    members = next;
    box = grown;
  }
}

function region(kind: RegionKind, caption: string, named: readonly SceneObject[]): SceneRegion {
  return { kind, caption, box: union(named.map((o) => o.box)), objectIds: named.map((o) => o.id) };
}

/** Every region the scene could be described by, each with its caption. */
export function regionCandidates(rng: Rng, objects: readonly SceneObject[]): SceneRegion[] {
  const out: SceneRegion[] = [];
  const g = CAPTION_GRAMMAR;
  for (const o of objects) {
    if (o.kind === 'sign') {
      out.push(region('sign', fill(rng.pick(g.sign), { colour: o.colour, labelColour: o.labelColour, text: o.label }), [o]));
    } else if (o.label !== null) {
      const slots = { colour: o.colour, shape: o.shape, label: o.label, kind: kindOf(o.label), labelColour: o.labelColour! };
      out.push(region('labelled', fill(rng.pick(g.labelled), slots), [o]));
    } else {
      out.push(region('plain', fill(rng.pick(g.plain), { colour: o.colour, shape: o.shape }), [o]));
    }
  }

  const signs = objects.filter((o): o is SignObject => o.kind === 'sign');
  const groupIds = [...new Set(objects.map((o) => o.group).filter((x): x is number => x !== null))];
  for (const gid of groupIds) {
    const members = objects.filter((o) => o.group === gid);
    const like = members[0]!;
    if (like.kind !== 'shape') continue;
    const closure = countClosure(objects, like, members);
    const slots = { colour: like.colour, shapes: PLURAL[like.shape] };
    if (closure.members.length >= 2 && closure.members.length <= 9) {
      out.push(region('group', fill(rng.pick(g.group), { ...slots, count: NUMBER_WORDS[closure.members.length]! }), closure.members));
    }
    const reach = 6 * like.size;
    const around: Box = [closure.box[0] - reach, closure.box[1] - reach, closure.box[2] + reach, closure.box[3] + reach];
    const near = signs.find((s) => overlaps(s.box, around));
    if (near === undefined) continue;
    // the sign widens the box, which may take in more of the group's look-alikes: count again
    const withSign = countClosure(objects, like, [...closure.members, near]);
    const n = withSign.members.length;
    if (n >= 2 && n <= 9) {
      const caption = fill(rng.pick(g.groupNearSign), { ...slots, count: NUMBER_WORDS[n]!, signColour: near.colour, text: near.label });
      out.push(region('groupNearSign', caption, [...withSign.members, near]));
    }
  }

  for (let i = 0; i < objects.length; i++) {
    for (let j = i + 1; j < objects.length; j++) {
      const a = objects[i]!;
      const b = objects[j]!;
      if (a.group !== null && a.group === b.group) continue;
      const dx = b.center[0] - a.center[0];
      const dy = b.center[1] - a.center[1];
      if (Math.hypot(dx, dy) > 4 * Math.max(a.size, b.size)) continue;
      // "the red circle is left of a blue star" must single out its objects within the box
      const box = union([a.box, b.box]);
      if (objects.some((o) => o !== a && o !== b && overlaps(o.box, box) && (sameDescription(o, a) || sameDescription(o, b)))) continue;
      // where a is, seen from b; diagonal neighbours are only "next to" each other
      const where = Math.abs(dx) > 2 * Math.abs(dy) ? (dx > 0 ? 'left' : 'right') : Math.abs(dy) > 2 * Math.abs(dx) ? (dy > 0 ? 'above' : 'below') : 'near';
      const caption = fill(rng.pick(g.relation), { a: describe(rng, a), b: describe(rng, b), relation: rng.pick(RELATIONS[where]) });
      out.push(region('relation', caption, [a, b]));
    }
  }
  return out;
}

/** Picks up to `wanted` regions with distinct boxes, taking kinds in turn so every kind shows up. */
export function chooseRegions(rng: Rng, candidates: SceneRegion[], wanted: number): SceneRegion[] {
  const byKind = new Map<RegionKind, SceneRegion[]>();
  for (const c of rng.shuffle(candidates)) byKind.set(c.kind, [...(byKind.get(c.kind) ?? []), c]);
  const queues = rng.shuffle([...byKind.values()]);
  const out: SceneRegion[] = [];
  const seen = new Set<string>();
  while (out.length < wanted && queues.some((q) => q.length > 0)) {
    for (const q of queues) {
      const r = q.shift();
      if (r === undefined || out.length >= wanted || seen.has(r.box.join(','))) continue;
      seen.add(r.box.join(','));
      out.push(r);
    }
  }
  return out;
}
