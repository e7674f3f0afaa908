/**
 * The named colours of the synthetic scenes, which colours a look-alike may swap in, and the
 * colour arithmetic the scenes need (jitter, contrast, luminance).
 */
import type { Rng } from '../../rng.js';
import type { Rgb } from '../draw.js';

export const COLOURS = [
  { name: 'red', rgb: [214, 39, 40] },
  { name: 'orange', rgb: [247, 132, 22] },
  { name: 'yellow', rgb: [246, 214, 36] },
  { name: 'green', rgb: [40, 160, 50] },
  { name: 'cyan', rgb: [40, 200, 220] },
  { name: 'blue', rgb: [31, 84, 220] },
  { name: 'purple', rgb: [136, 58, 200] },
  { name: 'pink', rgb: [245, 125, 190] },
  { name: 'brown', rgb: [128, 76, 36] },
  { name: 'white', rgb: [248, 248, 248] },
  { name: 'grey', rgb: [128, 128, 128] },
  { name: 'black', rgb: [16, 16, 16] },
] as const satisfies readonly { name: string; rgb: Rgb }[];
export type ColourName = (typeof COLOURS)[number]['name'];

const COLOUR_RGB = new Map<ColourName, Rgb>(COLOURS.map((c) => [c.name, c.rgb]));
export const COLOUR_NAMES: readonly ColourName[] = COLOURS.map((c) => c.name);

/** Colours a look-alike may swap in: near in hue or lightness, so only a close look tells. */
export const SIMILAR_COLOURS: Readonly<Record<ColourName, readonly ColourName[]>> = {
  red: ['orange', 'pink'], orange: ['red', 'yellow', 'brown'], yellow: ['orange'], green: ['cyan'],
  cyan: ['green', 'blue'], blue: ['cyan', 'purple'], purple: ['blue', 'pink'], pink: ['red', 'purple'],
  brown: ['orange', 'black'], white: ['grey'], grey: ['white', 'black'], black: ['grey', 'brown'],
};

export function rgbOf(name: ColourName): Rgb {
  return COLOUR_RGB.get(name)!;
}

export function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

export function jitter(rng: Rng, rgb: Rgb, amount: number): Rgb {
  return [clampByte(rgb[0] + rng.uniform(-amount, amount)), clampByte(rgb[1] + rng.uniform(-amount, amount)), clampByte(rgb[2] + rng.uniform(-amount, amount))];
}

export function colourDistance(a: Rgb, b: Rgb): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

export function luminance(c: Rgb): number {
  return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

/** Colours readable on `background`: far enough in luminance. */
export function contrastingColours(background: Rgb): ColourName[] {
  const l = luminance(background);
  return COLOUR_NAMES.filter((c) => Math.abs(luminance(rgbOf(c)) - l) > 90);
}
