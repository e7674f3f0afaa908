/**
 * Option sets that do not give the answer away.
 *
 * Distractors made as edits of the truth (three codes one character off the true code, the three
 * colours nearest the true colour, the counts either side of the true count) let a reader who
 * never looks at the image answer from the options alone: the truth is the option the others are
 * near. A language model learns that shortcut from the training questions and then answers at
 * well above chance blind, which hides what the vision encoder adds.
 *
 * Here the options are drawn the other way round: a hidden centre is one random step from the
 * truth, and each distractor is one random step from the centre. The truth and the distractors
 * are then all one step from the same centre and, for a step that is (near) symmetric, the truth
 * is any of the four as far as the options can tell; only the image tells them apart.
 */
import type { Rng } from '../../rng.js';
import { DIGITS, LETTERS } from '../scene/characters.js';

/** A random neighbour of `from` (the step); it may return `from` itself, which is not used. */
export type Step<T> = (rng: Rng, from: T) => T;

/**
 * Three distractors for `truth`, each one step from a hidden centre that is one step from the
 * truth, all distinct from each other, the truth and the centre, and accepted by `accept`
 * (e.g. "absent from the scene"); null when `tries` steps do not find three.
 */
export function aroundHiddenCentre<T>(rng: Rng, truth: T, step: Step<T>, key: (x: T) => string, accept: (x: T) => boolean, tries = 64): T[] | null {
  const centre = step(rng, truth);
  const taken = new Set([key(truth), key(centre)]);
  const out: T[] = [];
  for (let i = 0; i < tries && out.length < 3; i++) {
    const d = step(rng, centre);
    if (taken.has(key(d)) || !accept(d)) continue;
    taken.add(key(d));
    out.push(d);
  }
  return out.length === 3 ? out : null;
}

/**
 * One character of a code changed, at a uniformly drawn position, to a uniformly drawn other
 * character of its kind (digit or letter; the word tokenizer relies on the pattern). Every code
 * of a pattern has as many neighbours, so the step is symmetric: look-alike characters would
 * make it lopsided (a character with one look-alike has it taken by the truth).
 */
export const codeStep: Step<string> = (rng, code) => {
  const i = rng.int(0, code.length - 1);
  const ch = code[i]!;
  const next = rng.pick([...(DIGITS.includes(ch) ? DIGITS : LETTERS)].filter((c) => c !== ch));
  return code.slice(0, i) + next + code.slice(i + 1);
};

/** Four consecutive counts in [0, 9] holding `n` at a uniformly drawn place; null when that place puts the window outside. */
export function countWindow(rng: Rng, n: number): number[] | null {
  const start = n - rng.int(0, 3);
  if (start < 0 || start + 3 > 9) return null;
  return [start, start + 1, start + 2, start + 3];
}
