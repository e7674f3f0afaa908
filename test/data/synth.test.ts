/**
 * Tests for the synthetic scenes (src/data/scene/): deterministic, boxes inside the image and tight
 * around the pixels of the objects they name, and captions that are true of those objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Rng } from '../../src/rng.js';
import { COLOURS } from '../../src/data/scene/colours.js';
import { renderScene } from '../../src/data/scene/render.js';
import { SHAPES } from '../../src/data/scene/shapes.js';
import type { Scene, SceneObject } from '../../src/data/scene/types.js';
import { sceneAnnotation, sceneRng } from '../../src/data/synth.js';
import type { Box } from '../../src/data/draw.js';

const SIZE = { width: 512, height: 384 };
const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
const PLURALS: Record<string, string> = { cross: 'crosses' };
const plural = (shape: string): string => PLURALS[shape] ?? `${shape}s`;

// a handful of scenes shared by the tests below (rendering is the slow part)
const SCENES: Scene[] = Array.from({ length: 6 }, (_, i) => renderScene(sceneRng(7, i), i % 2 === 0 ? SIZE : { width: 384, height: 512 }));

function sha(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function overlaps(a: Box, b: Box): boolean {
  return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
}

function isColour(scene: Scene, x: number, y: number, colours: readonly (readonly number[] | null)[]): boolean {
  const i = (y * scene.width + x) * 3;
  return colours.some((c) => c !== null && scene.rgb[i] === c[0] && scene.rgb[i + 1] === c[1] && scene.rgb[i + 2] === c[2]);
}

test('the same Rng state gives the same scene; other seeds give others', () => {
  const a = renderScene(new Rng(42), SIZE);
  const b = renderScene(new Rng(42), SIZE);
  assert.equal(sha(a.rgb), sha(b.rgb));
  assert.deepEqual(sceneAnnotation(a), sceneAnnotation(b));
  assert.deepEqual(a.objects, b.objects);
  const c = renderScene(new Rng(43), SIZE);
  assert.notEqual(sha(a.rgb), sha(c.rgb));
  assert.notDeepEqual(sceneAnnotation(a).text, sceneAnnotation(c).text);
  assert.notEqual(sha(renderScene(sceneRng(1, 0), SIZE).rgb), sha(renderScene(sceneRng(1, 1), SIZE).rgb));
});

test('a caption range draws that many regions, and the scene otherwise the same pixels', () => {
  const plain = renderScene(sceneRng(3, 0), SIZE);
  const dense = renderScene(sceneRng(3, 0), SIZE, [20, 24]);
  assert.equal(sha(dense.rgb), sha(plain.rgb));
  assert.ok(dense.regions.length >= 20 && dense.regions.length <= 24, `${dense.regions.length} regions`);
  assert.equal(new Set(dense.regions.map((r) => r.box.join())).size, dense.regions.length);
});

test('scenes are full: many objects, several regions of several kinds, a global caption', () => {
  for (const s of SCENES) {
    assert.equal(s.rgb.length, s.width * s.height * 3);
    assert.ok(s.objects.length >= 15, `only ${s.objects.length} objects`);
    assert.ok(s.regions.length >= 4 && s.regions.length <= 8, `${s.regions.length} regions`);
    assert.ok(new Set(s.regions.map((r) => r.kind)).size >= 3);
    assert.match(s.globalCaption, /^(a |\d)/);
    assert.ok(s.objects.some((o) => o.kind === 'sign') && s.objects.some((o) => o.kind === 'shape' && o.label !== null));
  }
  const kinds = new Set(SCENES.flatMap((s) => s.regions.map((r) => r.kind)));
  for (const k of ['plain', 'labelled', 'sign', 'group', 'relation'] as const) assert.ok(kinds.has(k), `no ${k} region in the test scenes`);
});

test('object boxes are inside the image, apart, small, and tight around the object\'s pixels', () => {
  for (const s of SCENES) {
    for (const o of s.objects) {
      const [x0, y0, x1, y1] = o.box;
      assert.ok(Number.isInteger(x0) && Number.isInteger(y1), 'whole pixels');
      assert.ok(x0 >= 0 && y0 >= 0 && x1 <= s.width && y1 <= s.height && x0 < x1 && y0 < y1, `box ${o.box}`);
      assert.ok(Math.max(x1 - x0, y1 - y0) <= 0.06 * Math.max(s.width, s.height) + 24, `object ${o.id} is not small: ${o.box}`);
      const own = [o.rgb, o.labelRgb];
      // every edge row and column of the box holds a pixel of the object: nothing is loose
      const row = (y: number): boolean => Array.from({ length: x1 - x0 }, (_, k) => x0 + k).some((x) => isColour(s, x, y, own));
      const col = (x: number): boolean => Array.from({ length: y1 - y0 }, (_, k) => y0 + k).some((y) => isColour(s, x, y, own));
      assert.ok(row(y0) && row(y1 - 1) && col(x0) && col(x1 - 1), `object ${o.id} (${o.kind}) box ${o.box} is not tight`);
      // and the box is mostly the object, not background
      let mine = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (isColour(s, x, y, own)) mine++;
      assert.ok(mine / ((x1 - x0) * (y1 - y0)) > 0.3, `object ${o.id} covers ${mine} of its box`);
    }
    for (let i = 0; i < s.objects.length; i++) {
      for (let j = i + 1; j < s.objects.length; j++) assert.ok(!overlaps(s.objects[i]!.box, s.objects[j]!.box), `objects ${i} and ${j} overlap`);
    }
  }
});

function shapeWord(o: SceneObject): RegExp {
  return o.kind === 'sign' ? /\bsign\b/ : new RegExp(`\\b(${o.shape}|${plural(o.shape)})\\b`);
}

test('region boxes are the union of the named objects; captions name their attributes', () => {
  for (const s of SCENES) {
    for (const r of s.regions) {
      const named = r.objectIds.map((id) => s.objects[id]!);
      assert.ok(named.length >= 1);
      const union = named.reduce<Box>((u, o) => [Math.min(u[0], o.box[0]), Math.min(u[1], o.box[1]), Math.max(u[2], o.box[2]), Math.max(u[3], o.box[3])], [Infinity, Infinity, -Infinity, -Infinity]);
      assert.deepEqual(r.box, union, r.caption);
      for (const o of named) {
        assert.match(r.caption, new RegExp(`\\b${o.colour}\\b`), `${r.caption} misses ${o.colour}`);
        assert.match(r.caption, shapeWord(o), `${r.caption} misses the shape of ${o.id}`);
        if (o.kind === 'sign' || (r.kind === 'labelled' && o.label !== null)) assert.ok(r.caption.includes(o.label!), `${r.caption} misses ${o.label}`);
      }
    }
  }
});

test('counts count every object of that colour and shape touching the box', () => {
  let checked = 0;
  for (const s of SCENES) {
    for (const r of s.regions.filter((x) => x.kind === 'group' || x.kind === 'groupNearSign')) {
      const shapes = r.objectIds.map((id) => s.objects[id]!).filter((o) => o.kind === 'shape');
      const first = shapes[0]!;
      assert.ok(first.kind === 'shape');
      const same = s.objects.filter((o) => o.kind === 'shape' && o.shape === first.shape && o.colour === first.colour && overlaps(o.box, r.box));
      assert.equal(same.length, shapes.length, r.caption);
      assert.ok(r.caption.startsWith(`${NUMBER_WORDS[same.length]} ${first.colour} ${plural(first.shape)}`) || r.caption.startsWith(`a group of ${NUMBER_WORDS[same.length]} `), r.caption);
      checked++;
    }
  }
  assert.ok(checked > 0, 'no count regions in the test scenes');
});

test('relations agree with where the objects are and single them out', () => {
  for (const s of SCENES) {
    for (const r of s.regions.filter((x) => x.kind === 'relation')) {
      const [a, b] = r.objectIds.map((id) => s.objects[id]!);
      const dx = b!.center[0] - a!.center[0];
      const dy = b!.center[1] - a!.center[1];
      if (/\bleft of\b/.test(r.caption)) assert.ok(dx > 0, r.caption);
      if (/\bright of\b/.test(r.caption)) assert.ok(dx < 0, r.caption);
      if (/\babove\b/.test(r.caption)) assert.ok(dy > 0, r.caption);
      if (/\bbelow\b/.test(r.caption)) assert.ok(dy < 0, r.caption);
      // nothing else in the box answers to either description
      for (const o of s.objects) {
        if (o === a || o === b || !overlaps(o.box, r.box)) continue;
        for (const named of [a!, b!]) {
          const same = o.kind === 'sign' ? named.kind === 'sign' && o.colour === named.colour && o.label === named.label
            : named.kind === 'shape' && o.shape === named.shape && o.colour === named.colour;
          assert.ok(!same, `${r.caption}: object ${o.id} looks like ${named.id}`);
        }
      }
    }
  }
});

test('the global caption counts shapes and signs', () => {
  for (const s of SCENES) {
    const shapes = s.objects.filter((o) => o.kind === 'shape').length;
    const signs = s.objects.length - shapes;
    assert.match(s.globalCaption, new RegExp(`\\b${shapes} small shapes? and ${signs} signs?\\b`), s.globalCaption);
  }
});

test('attributes come from the published lists; look-alikes differ from their original', () => {
  const colours = new Set<string>(COLOURS.map((c) => c.name));
  let lookalikes = 0;
  for (const s of SCENES) {
    for (const o of s.objects) {
      assert.ok(colours.has(o.colour));
      if (o.kind === 'shape') assert.ok((SHAPES as readonly string[]).includes(o.shape));
      if (o.lookalikeOf === null) continue;
      const of = s.objects[o.lookalikeOf]!;
      lookalikes++;
      const differs = o.colour !== of.colour || o.label !== of.label || o.kind !== of.kind || (o.kind === 'shape' && of.kind === 'shape' && o.shape !== of.shape);
      assert.ok(differs, `look-alike ${o.id} is a copy of ${of.id}`);
    }
  }
  assert.ok(lookalikes > 0);
});

test('renderScene refuses sizes it cannot draw', () => {
  assert.throws(() => renderScene(new Rng(1), { width: 10, height: 100 }), RangeError);
  assert.throws(() => renderScene(new Rng(1), { width: 100.5, height: 100 }), RangeError);
});
