/**
 * The caption grammar of the synthetic scenes. It is data (`CAPTION_GRAMMAR`): `wordTokenizer.ts`
 * reads its words to build a closed vocabulary, so a word added to a template reaches the
 * tokenizer by itself.
 */
import { GLYPH_CHARS } from '../glyphs.js';
import { COLOUR_NAMES } from './colours.js';
import { PLURAL, SHAPES } from './shapes.js';

export const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'] as const;
export const RELATIONS = {
  left: ['left of', 'to the left of'],
  right: ['right of', 'to the right of'],
  above: ['above', 'just above'],
  below: ['below', 'just below'],
  near: ['next to', 'near'],
} as const;

/**
 * Every caption is one of these templates with its {slots} filled; `a` before a vowel becomes
 * `an` afterwards. Slots: colour, labelColour, signColour, otherColour (colour names), shape,
 * shapes (plural), kind (digit | letter), label and text (characters of glyphs.ts), count
 * (number words), n and m (decimal numbers), relation, tone, and a, b (each a `description`).
 * `slots` lists the words slots can take, for the vocabulary.
 */
export const CAPTION_GRAMMAR = {
  plain: ['a {colour} {shape}', 'a small {colour} {shape}', 'one {colour} {shape}', 'a tiny {colour} {shape}'],
  labelled: [
    'the {kind} {label} on a {colour} {shape}',
    'a {colour} {shape} with the {kind} {label} on it',
    'a {colour} {shape} marked with the {kind} {label}',
    'a {colour} {shape} labelled {label} in {labelColour}',
  ],
  sign: [
    'a {colour} sign reading {text}',
    'a {colour} sign that says {text}',
    'a sign with {labelColour} characters {text} on a {colour} background',
    'the code {text} written on a {colour} sign',
  ],
  group: ['{count} {colour} {shapes}', 'a group of {count} {colour} {shapes}', '{count} {colour} {shapes} close together'],
  groupNearSign: ['{count} {colour} {shapes} near a {signColour} sign reading {text}', '{count} {colour} {shapes} beside a {signColour} sign with the code {text}'],
  relation: ['a {a} {relation} a {b}', 'the {a} is {relation} a {b}'],
  description: ['{colour} {shape}', '{colour} {shape} marked {label}', '{colour} sign reading {text}'],
  global: [
    'a cluttered scene with {n} small shapes and {m} signs',
    'a busy {tone} background scattered with {n} small shapes and {m} signs',
    '{n} small shapes and {m} signs on a {tone} textured background',
  ],
  globalColours: ['mostly {colour} and {otherColour}', 'most of them are {colour} or {otherColour}', 'the most common colours are {colour} and {otherColour}'],
  globalCount: ['there are {count} {colour} {shapes}', 'the scene holds {count} {colour} {shapes}', 'there is one {colour} {shape}'],
  globalGrid: ['thin grid lines cross the background', 'a faint grid covers the background'],
  slots: {
    colour: COLOUR_NAMES,
    shape: SHAPES,
    shapes: SHAPES.map((s) => PLURAL[s]),
    kind: ['digit', 'letter'],
    count: NUMBER_WORDS,
    relation: Object.values(RELATIONS).flat(),
    tone: ['light', 'dark', 'muted'],
    label: [...GLYPH_CHARS],
    article: ['a', 'an'],
    // singular forms of "shapes"/"signs" when a count is one
    singular: ['shape', 'sign'],
  },
} as const;

export function fill(template: string, slots: Readonly<Record<string, string>>): string {
  const text = template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = slots[name];
    if (value === undefined) throw new Error(`caption template "${template}" needs slot {${name}}`);
    return value;
  });
  return text.replace(/\ba (?=[aeiou])/g, 'an ');
}
