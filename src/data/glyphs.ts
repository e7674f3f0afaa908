/**
 * A 5 x 7 bitmap font for 0-9 and A-Z (nothing can be downloaded, so no real fonts), drawn by
 * scaling each lit cell to a rectangle. Look-alike pairs (0/O, 1/I, 5/S, 8/B, 2/Z, 6/G) differ in
 * a few cells only, which is what makes them readable at high resolution and not at low.
 */
import { fillRect, type Canvas, type Extent, type Rgb } from './draw.js';

export const GLYPH_CHARS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
export const GLYPH_COLS = 5;
export const GLYPH_ROWS = 7;
/** columns a character advances by: its 5 plus one blank */
const ADVANCE = GLYPH_COLS + 1;

// '#' = lit; 7 rows of 5 per character
const FONT: Readonly<Record<string, string>> = {
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '##### ...#. ..#.. ...#. ....# #...# .###.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '###.. #..#. #...# #...# #...# #..#. ###..',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
};

/** The lit cells of one character, [GLYPH_ROWS, GLYPH_COLS] row-major, 1 = lit. */
export function glyphBitmap(ch: string): Uint8Array {
  const rows = FONT[ch.toUpperCase()];
  if (rows === undefined) throw new RangeError(`glyphBitmap: no glyph for ${JSON.stringify(ch)}`);
  return Uint8Array.from(rows.replaceAll(' ', ''), (c) => (c === '#' ? 1 : 0));
}

const BITMAPS = new Map<string, Uint8Array>([...GLYPH_CHARS].map((c) => [c, glyphBitmap(c)]));

/** Width in pixels of `text` drawn `height` pixels tall (no trailing blank column). */
export function textWidth(text: string, height: number): number {
  const cell = height / GLYPH_ROWS;
  return text.length === 0 ? 0 : (text.length * ADVANCE - 1) * cell;
}

export interface TextStyle {
  readonly colour: Rgb;
  readonly extent?: Extent;
}

/**
 * Draws `text` (characters of GLYPH_CHARS) `height` pixels tall with its centre at (cx, cy).
 * Cell edges are rounded to whole pixels so every cell of a glyph is the same size within a
 * pixel and strokes keep their width.
 */
export function drawText(canvas: Canvas, text: string, cx: number, cy: number, height: number, style: TextStyle): void {
  const cell = height / GLYPH_ROWS;
  const left = cx - textWidth(text, height) / 2;
  const top = cy - height / 2;
  const edge = (origin: number, i: number): number => Math.round(origin + i * cell);
  [...text].forEach((ch, k) => {
    const bitmap = BITMAPS.get(ch.toUpperCase());
    if (bitmap === undefined) throw new RangeError(`drawText: no glyph for ${JSON.stringify(ch)}`);
    const col0 = k * ADVANCE;
    for (let r = 0; r < GLYPH_ROWS; r++) {
      for (let c = 0; c < GLYPH_COLS; c++) {
        if (bitmap[r * GLYPH_COLS + c] === 0) continue;
        fillRect(canvas, edge(left, col0 + c), edge(top, r), edge(left, col0 + c + 1), edge(top, r + 1), style);
      }
    }
  });
}
