/**
 * Caption clean-up for pre-training (spec §3, Text). The reference's captions come from a
 * captioning model shown crops, so they open with boiler-plate about the picture ("The second
 * image is a close-up of ...") and often end with a sentence about visible text ("There is no
 * visible text."). Neither says anything about the content, and the opening would let the text
 * tower tell local from global captions by phrasing alone, so both go. Sentence masking then keeps
 * a random contiguous run of sentences, so one long caption gives many shorter ones.
 */

import type { Rng } from '../rng.js';

// Word lists the opening patterns are built from (lower case; the patterns are case-insensitive).
const WHICH =
  '(?:first|second|third|fourth|fifth|sixth|last|final|next|other|top|bottom|left|right|upper|lower|main|given|provided|current|above|following|original|cropped|zoomed[- ]in)';
const PICTURE = '(?:image|picture|photo|photograph|pic|shot|snapshot|frame|crop|view|scene|region|area|section|portion|close[- ]?up)';
/** What makes "a ___ of" boiler-plate rather than content. */
const CLOSE = '(?:(?:extreme |very )?close[- ]?up|zoomed[- ]in|cropped|detailed|magnified|enlarged|partial)';
const KIND = '(?:view|shot|image|photo|photograph|picture|snapshot|depiction|look)';
const SHOWS =
  '(?:shows|showcases|depicts|displays|features|presents|captures|contains|illustrates|highlights|portrays|reveals|focuses on|is showing|is displaying|is depicting|is focused on|appears to show|seems to show)';
/** "a close-up of ", "a detailed view of ", "a picture of " after the verb. */
const A_VIEW_OF = `(?:an? (?:${CLOSE} )?${KIND} of |an? ${CLOSE} (?:${KIND} )?of )`;

/** Openings to drop, each anchored at the start of the caption; the content after them stays. */
const OPENINGS: readonly RegExp[] = [
  // "The second image shows (a close-up of) ...", "This picture depicts ..."
  new RegExp(`^(?:the|this) (?:${WHICH} )?${PICTURE} ${SHOWS} ${A_VIEW_OF}?`, 'i'),
  // "The second image is a close-up of ...", "This is a close-up view of ...", "It is a picture of ..."
  new RegExp(`^(?:(?:the|this) (?:${WHICH} )?${PICTURE}|this|it|here) (?:is|appears to be|seems to be) (?:${A_VIEW_OF}|of )`, 'i'),
  // "In this close-up (view), (we can see) ...", "In the image, ..."
  new RegExp(`^in (?:the|this) (?:${WHICH} )?(?:${CLOSE} )?${PICTURE}(?: ${KIND})?,? (?:(?:we|you|one) (?:can )?see )?`, 'i'),
  // "A close-up view of ...", "Close-up of ...", "A detailed shot showing ..."
  new RegExp(`^(?:an? )?${CLOSE} (?:${KIND} )?(?:of|showing|depicting) `, 'i'),
  // "A picture of ...", "An image showing ..."
  new RegExp(`^(?:an? )?${KIND} (?:of|showing|depicting) `, 'i'),
];

const TEXT_WORD = '(?:texts?|writing|words?|letters|lettering|inscriptions?)';
/** A (last) sentence about visible text. */
const VISIBLE_TEXT: readonly RegExp[] = [
  // "There is no visible text.", "There are no legible words in the image."
  new RegExp(`^there (?:is|are) no (?:\\S+ ){0,2}${TEXT_WORD}\\b`, 'i'),
  // "No text is visible in the image."
  new RegExp(`^no (?:\\S+ ){0,2}${TEXT_WORD}\\b`, 'i'),
  // "The image does not contain any text.", "It has no visible writing."
  new RegExp(`^(?:the (?:image|picture|photo)|it|this) (?:does not|doesn't|has no|contains no|shows no|is free of) (?:\\S+ ){0,3}${TEXT_WORD}\\b`, 'i'),
  // "The text reads ...", "The visible text on the sign says ...", "Any writing is illegible."
  new RegExp(`^(?:the |any |some |all )?(?:\\S+ ){0,2}${TEXT_WORD}\\b.*\\b(?:reads?|says|states|spells|visible|legible|illegible|readable|discernible|present|written)\\b`, 'i'),
  // "There is some text visible at the top."
  new RegExp(`^there (?:is|are) (?:some |a few )?(?:\\S+ ){0,2}${TEXT_WORD}\\b.*\\b(?:visible|legible|readable|reads?|says|written)\\b`, 'i'),
];

/** Words whose trailing period does not end a sentence ("Dr. Smith", "No. 5", initials). */
const ABBREVIATION = /(?:^|[\s(])(?:mr|mrs|ms|dr|st|prof|jr|sr|vs|no|fig|approx|inc|ltd|co|mt|ave|e\.g|i\.e|u\.s|[a-z])$/i;

/**
 * Split at ., ! or ? (with any closing quotes or brackets) followed by space and a capital, digit
 * or opening quote; abbreviations and initials do not end sentences.
 */
export function splitSentences(text: string): string[] {
  const boundary = /([.!?])+["'”’)\]]*\s+(?=["'“‘(\[]?[A-Z0-9])/g;
  const sentences: string[] = [];
  let start = 0;
  for (let m = boundary.exec(text); m !== null; m = boundary.exec(text)) {
    const before = text.slice(start, m.index);
    if (m[1] === '.' && ABBREVIATION.test(before)) continue;
    sentences.push(text.slice(start, m.index + m[0].length).trim());
    start = m.index + m[0].length;
  }
  const rest = text.slice(start).trim();
  if (rest !== '') sentences.push(rest);
  return sentences;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Drop boiler-plate openings (repeatedly: "The image shows a close-up view of" is two). */
function dropOpening(text: string): string {
  let out = text;
  for (let round = 0; round < 3; round++) {
    const pattern = OPENINGS.find((p) => p.test(out));
    if (pattern === undefined) break;
    const rest = out.replace(pattern, '').replace(/^[\s,:;-]+/, '');
    if (rest === '') break;
    out = capitalise(rest);
  }
  return out;
}

/** Drop a last sentence about visible text, unless it is the only one. */
function dropVisibleTextSentence(text: string): string {
  const sentences = splitSentences(text);
  const last = sentences[sentences.length - 1];
  if (sentences.length < 2 || !VISIBLE_TEXT.some((p) => p.test(last!))) return text;
  return sentences.slice(0, -1).join(' ');
}

/** The caption without boiler-plate opening and without a closing sentence about visible text. */
export function cleanCaption(text: string): string {
  return dropVisibleTextSentence(dropOpening(text.replace(/\s+/g, ' ').trim()));
}

/**
 * Keep a random contiguous run of sentences: the start uniform over the first three sentences
 * (fewer if there are fewer), the length uniform from 1 to all that remain.
 */
export function maskSentences(text: string, rng: Rng): string {
  const sentences = splitSentences(text);
  if (sentences.length <= 1) return text;
  const start = rng.int(0, Math.min(3, sentences.length) - 1);
  const length = rng.int(1, sentences.length - start);
  return sentences.slice(start, start + length).join(' ');
}
