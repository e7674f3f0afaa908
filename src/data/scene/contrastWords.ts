/**
 * The words of the scenes' captions that stand in for each other — a colour for a colour, a
 * shape for a shape, a character for a character — so that a caption one word away from another
 * names a different object (the pre-training's hard negatives, train/hardNegatives.ts). Words as
 * the word tokenizer sees them: lower case, one character a token.
 */
import { COLOUR_NAMES } from './colours.js';
import { PLURAL, SHAPES } from './shapes.js';
import { DIGITS, LETTERS } from './characters.js';
import { NUMBER_WORDS } from './grammar.js';

export const CONTRAST_WORDS: readonly (readonly string[])[] = [
  COLOUR_NAMES,
  SHAPES,
  SHAPES.map((s) => PLURAL[s]),
  // the letter a is also the article: swapping that would name no other object
  [...LETTERS.toLowerCase()].filter((c) => c !== 'a'),
  [...DIGITS],
  NUMBER_WORDS,
];
