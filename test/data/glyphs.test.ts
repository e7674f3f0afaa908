/** Tests for src/data/glyphs.ts: 36 distinct characters, drawn at any height. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCanvas, Extent } from '../../src/data/draw.js';
import { drawText, glyphBitmap, GLYPH_CHARS, GLYPH_COLS, GLYPH_ROWS, textWidth } from '../../src/data/glyphs.js';

test('every character has a 5 x 7 bitmap, all 36 different', () => {
  assert.equal(GLYPH_CHARS.length, 36);
  const seen = new Map<string, string>();
  for (const ch of GLYPH_CHARS) {
    const bits = glyphBitmap(ch);
    assert.equal(bits.length, GLYPH_COLS * GLYPH_ROWS);
    assert.ok(bits.some((b) => b === 1), `${ch} is blank`);
    const key = bits.join('');
    assert.equal(seen.get(key), undefined, `${ch} looks like ${seen.get(key)}`);
    seen.set(key, ch);
  }
  assert.deepEqual(glyphBitmap('k'), glyphBitmap('K'));
  assert.throws(() => glyphBitmap('!'), RangeError);
});

test('drawn glyphs are distinct rasters at a small height, and fill their cells exactly', () => {
  const height = 14; // 2 px per cell
  const rasters = new Set<string>();
  for (const ch of GLYPH_CHARS) {
    const c = createCanvas(16, 16);
    const extent = new Extent();
    drawText(c, ch, 8, 8, height, { colour: [255, 255, 255], extent });
    const lit = Array.from({ length: 16 * 16 }, (_, i): number => (c.rgb[i * 3] === 255 ? 1 : 0));
    rasters.add(lit.join(''));
    const cells = glyphBitmap(ch).reduce((s, b) => s + b, 0);
    assert.equal(lit.reduce((s, b) => s + b, 0), cells * 4, ch);
    const [x0, y0, x1, y1] = extent.box();
    assert.ok(x1 - x0 <= 10 && y1 - y0 <= 14, `${ch} box ${extent.box()}`);
  }
  assert.equal(rasters.size, 36);
});

test('textWidth: 6 cells per character less the last blank column', () => {
  assert.equal(textWidth('K3', 14), (2 * 6 - 1) * 2);
  assert.equal(textWidth('', 14), 0);
});
