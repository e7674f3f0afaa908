/** The characters on labels and signs: sign codes, and look-alike characters for distractors. */
import type { Rng } from '../../rng.js';

/** Characters that differ from each other in a few font cells only (see glyphs.ts). */
export const SIMILAR_CHARS: Readonly<Record<string, string>> = {
  '0': 'OQD', O: '0QC', Q: 'O0', D: '0O', '1': 'I7', I: '1T', '7': '1T', T: '7I', '5': 'S6', S: '58',
  '8': 'B3', B: '8R', '2': 'Z', Z: '2', '6': 'G5', G: 'C6', C: 'G', E: 'F', F: 'EP', P: 'RF', R: 'PB',
  M: 'NW', N: 'MH', H: 'N', U: 'V', V: 'UY', W: 'M', K: 'X', X: 'KY', Y: 'V', '3': '8', '4': 'A', A: '4',
  '9': 'G', J: 'U', L: 'E',
};
export const DIGITS = '0123456789';
export const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** A sign code: letter, digit, letter+digit(s), digits, digit+letter. Never two letters in a row,
 * so the word tokenizer's digit split always leaves single characters (see wordTokenizer.ts). */
export function signCode(rng: Rng): string {
  const d = (): string => rng.pick([...DIGITS]);
  const l = (): string => rng.pick([...LETTERS]);
  switch (rng.int(0, 5)) {
    case 0: return l();
    case 1: return d();
    case 2: return l() + d();
    case 3: return d() + d();
    case 4: return l() + d() + d();
    default: return d() + l();
  }
}

/** A code with one character swapped for a look-alike (or changed, when it has none). */
export function similarCode(rng: Rng, code: string): string {
  const i = rng.int(0, code.length - 1);
  const ch = code[i]!;
  const isDigit = DIGITS.includes(ch);
  // keep the letter/digit pattern so the code stays tokenizable
  const options = [...(SIMILAR_CHARS[ch] ?? '')].filter((c) => DIGITS.includes(c) === isDigit);
  const next = options.length > 0 ? rng.pick(options) : rng.pick([...(isDigit ? DIGITS : LETTERS)].filter((c) => c !== ch));
  return code.slice(0, i) + next + code.slice(i + 1);
}

export function kindOf(ch: string): 'digit' | 'letter' {
  return DIGITS.includes(ch) ? 'digit' : 'letter';
}
