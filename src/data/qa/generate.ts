/**
 * 4KPro-lite: multiple-choice questions over synthetic 4K scenes (src/data/scene/) whose answers
 * need 4K perception — the deciding detail (a sign's characters, a shape's label, the shapes of
 * tiny objects) is a few pixels or less once the image is squashed to the low-res scale (378 px).
 *
 * Every answer is computed from the scene's object list, never from pixels, and each question
 * records its evidence (object ids, their box, the deciding detail's size at low res). Four
 * categories:
 *  - `sign-reading`: "What does the red sign read?" — only signs whose colour no other sign has;
 *  - `attribute`: "What colour is the hexagon marked with the letter K?" or "What shape is the red
 *    object marked with the digit 7?" — the referent is found only by reading its label;
 *  - `counting`: "How many red triangles are there in the image?" — every shape of that colour and
 *    shape, each tiny at low res;
 *  - `lookalike`: "Which of these is in the image: …?" — a present object's description vs
 *    descriptions that match no object in the scene.
 * The distractors (options.ts) are drawn around a hidden centre one step from the truth — codes
 * one character apart, neighbouring named colours, descriptions one attribute apart, a window of
 * four counts holding the truth at a random place — so the options alone do not tell which is
 * the truth (src/eval/qa/optionsOnly.ts measures it).
 *
 * Held-out seeds: training data (`ps3 data synth`) uses seeds below HELDOUT_SEED_BASE (1e6) by
 * convention; the benchmark maker (src/eval/qa/make4k.ts) refuses seeds below it unless forced
 * and records the seed. Scene i is `renderScene(sceneRng(seed, i))`, exactly as `ps3 data synth`
 * would draw it for that seed, so a held-out seed gives scenes no training run of seed < 1e6 drew
 * (the per-image 32-bit stream seeds of different dataset seeds can in principle collide; at 1e6
 * images per dataset the chance of any one collision is about 1e6 * count / 2^32 per training
 * seed).
 */
import { Rng } from '../../rng.js';
import { union } from '../scene/boxes.js';
import { kindOf } from '../scene/characters.js';
import { COLOURS } from '../scene/colours.js';
import { NUMBER_WORDS } from '../scene/grammar.js';
import { LABELLED_SHAPES, PLURAL, SHAPES } from '../scene/shapes.js';
import type { Scene, SceneObject, ShapeObject, SignObject } from '../scene/types.js';
import { aroundHiddenCentre, codeStep, countWindow, type Step } from './options.js';

/**
 * The question generator's version, in benchmark manifests and training-cache keys: 2 draws the
 * options around a hidden centre (options.ts); version 1 made them as edits of the truth, and a
 * reader of the options alone (src/eval/qa/optionsOnly.ts) answered 0.70 of a 100-question
 * benchmark.
 */
export const QA_VERSION = 2;

/** Scenes with seeds from here up are held out from training. */
export const HELDOUT_SEED_BASE = 1_000_000;
/**
 * First seed of validation data: held out from training, and not the evaluation's default, so
 * that checks watched while choosing a recipe never tune on the reported evaluation.
 */
export const VALIDATION_SEED = HELDOUT_SEED_BASE + 900_000;
export const QA_CATEGORIES = ['sign-reading', 'attribute', 'counting', 'lookalike'] as const;
export type QaCategory = (typeof QA_CATEGORIES)[number];

/** Largest size, in low-res pixels, of the detail that decides an answer. */
export const MAX_DETAIL_PX = {
  /** glyph height: 7 font rows in 4 px or less (under 0.6 px a row) cannot be read */
  glyph: 4,
  /** a shape's diameter: 5 px or less does not tell a triangle from a diamond or a pentagon */
  shape: 5,
} as const;

export interface QuestionDraft {
  readonly category: QaCategory;
  readonly question: string;
  readonly options: string[];
  readonly answer: number;
  readonly prompt: string;
  readonly statements: string[];
  readonly evidence: { object_ids: number[]; box: [number, number, number, number]; detail_px_at_lowres: number; lowres: number };
}

/** "a" before a vowel becomes "an", as the caption grammar writes it. */
function withArticles(text: string): string {
  return text.replace(/\ba (?=[aeiou])/g, 'an ');
}

/** The named colours nearest to `name` in RGB, nearest first. */
export function nearestColours(name: string): string[] {
  const own = COLOURS.find((c) => c.name === name);
  if (!own) throw new RangeError(`nearestColours: unknown colour ${name}`);
  const d = (c: (typeof COLOURS)[number]): number => Math.hypot(c.rgb[0] - own.rgb[0], c.rgb[1] - own.rgb[1], c.rgb[2] - own.rgb[2]);
  return COLOURS.filter((c) => c.name !== name).sort((a, b) => d(a) - d(b)).map((c) => c.name);
}

/**
 * Colour neighbours: two named colours are neighbours when either is among the other's three
 * nearest (the relation made symmetric, so a step from the truth and a step back are alike).
 */
const COLOUR_NEIGHBOURS: ReadonlyMap<string, readonly string[]> = new Map(
  COLOURS.map(({ name }) => [name, COLOURS.map((c) => c.name).filter((c) => c !== name && (nearestColours(name).slice(0, 3).includes(c) || nearestColours(c).slice(0, 3).includes(name)))]),
);

const colourStep: Step<string> = (rng, colour) => rng.pick(COLOUR_NEIGHBOURS.get(colour) ?? []);

/** What a look-alike option describes: a shape of a colour, or a sign of a colour reading a code. */
interface Described {
  readonly colour: string;
  readonly sign: boolean;
  /** the shape, or the sign's code */
  readonly what: string;
}

function describe(d: Described): string {
  return withArticles(d.sign ? `a ${d.colour} sign reading ${d.what}` : `a ${d.colour} ${d.what}`);
}

/** One attribute changed, colour or the other (shape or code), each half the time. */
const describedStep: Step<Described> = (rng, d) => {
  if (rng.next() < 0.5) return { ...d, colour: colourStep(rng, d.colour) };
  return { ...d, what: d.sign ? codeStep(rng, d.what) : rng.pick(SHAPES.filter((s) => s !== d.what)) };
};

/** Sign text height in pixels: the plate is 1.7 text heights tall. */
function signGlyphPx(s: SignObject): number {
  return (s.box[3] - s.box[1]) / 1.7;
}

/** A shape's label height in pixels: at most half the shape (scene/shapes.ts LABEL_FIT). */
function labelGlyphPx(s: ShapeObject): number {
  return 0.5 * s.size;
}

/** Options [truth, ...distractors] shuffled; the answer is where the truth lands. */
function shuffled(rng: Rng, truth: string, distractors: readonly string[], statementOf: (o: string) => string): { options: string[]; answer: number; statements: string[] } {
  const options = rng.shuffle([truth, ...distractors]);
  return { options, answer: options.indexOf(truth), statements: options.map(statementOf) };
}

function evidence(objects: readonly SceneObject[], detailPx: number, lowres: number): QuestionDraft['evidence'] {
  return { object_ids: objects.map((o) => o.id), box: union(objects.map((o) => o.box)), detail_px_at_lowres: Math.round(detailPx * 100) / 100, lowres };
}

/** The sign-reading question about the sign of colour `colour` (the LM's reading stage asks it too). */
export function signReadingQuestion(colour: string): string {
  return `What does the ${colour} sign read?`;
}

function signReading(scene: Scene, rng: Rng, k: number, lowres: number): QuestionDraft | null {
  const signs = scene.objects.filter((o): o is SignObject => o.kind === 'sign');
  const candidates = signs.filter((s) => signs.filter((t) => t.colour === s.colour).length === 1 && signGlyphPx(s) * k <= MAX_DETAIL_PX.glyph);
  if (candidates.length === 0) return null;
  const s = rng.pick(candidates);
  const distractors = aroundHiddenCentre(rng, s.label, codeStep, (c) => c, () => true);
  if (!distractors) return null;
  const { options, answer, statements } = shuffled(rng, s.label, distractors, (c) => withArticles(`a ${s.colour} sign reading ${c}`));
  return {
    category: 'sign-reading', question: signReadingQuestion(s.colour), options, answer, statements,
    prompt: withArticles(`a ${s.colour} sign`), evidence: evidence([s], signGlyphPx(s) * k, lowres),
  };
}

const markedWith = (label: string): string => `marked with the ${kindOf(label)} ${label}`;

/** The attribute question asking the colour of the `shape` marked with the one-character `label` (the LM's reading stage asks it too). */
export function attributeColourQuestion(shape: string, label: string): string {
  return `What colour is the ${shape} ${markedWith(label)}?`;
}

/** The attribute question asking the shape of the `colour` object marked with `label`. */
export function attributeShapeQuestion(colour: string, label: string): string {
  return withArticles(`What shape is the ${colour} object ${markedWith(label)}?`);
}

function attribute(scene: Scene, rng: Rng, k: number, lowres: number): QuestionDraft | null {
  const labelled = scene.objects.filter((o): o is ShapeObject => o.kind === 'shape' && o.label !== null);
  const candidates = labelled.filter((s) => labelled.filter((t) => t.label === s.label).length === 1 && labelGlyphPx(s) * k <= MAX_DETAIL_PX.glyph);
  if (candidates.length === 0) return null;
  const s = rng.pick(candidates);
  const label = s.label!;
  const marked = markedWith(label);
  const ev = evidence([s], labelGlyphPx(s) * k, lowres);
  if (rng.next() < 0.5) {
    const distractors = aroundHiddenCentre(rng, s.colour, colourStep, (c) => c, () => true);
    if (!distractors) return null;
    const { options, answer, statements } = shuffled(rng, s.colour, distractors, (c) => withArticles(`a ${c} ${s.shape} ${marked}`));
    return { category: 'attribute', question: attributeColourQuestion(s.shape, label), options, answer, statements, prompt: `a ${s.shape} ${marked}`, evidence: ev };
  }
  const distractors = rng.shuffle(LABELLED_SHAPES.filter((x) => x !== s.shape)).slice(0, 3);
  const { options, answer, statements } = shuffled(rng, s.shape, distractors, (x) => withArticles(`a ${s.colour} ${x} ${marked}`));
  return {
    category: 'attribute', question: attributeShapeQuestion(s.colour, label), options, answer, statements,
    prompt: withArticles(`a ${s.colour} shape ${marked}`), evidence: ev,
  };
}

function counting(scene: Scene, rng: Rng, k: number, lowres: number): QuestionDraft | null {
  const shapes = scene.objects.filter((o): o is ShapeObject => o.kind === 'shape');
  const looks = new Map<string, ShapeObject[]>();
  for (const s of shapes) looks.set(`${s.colour} ${s.shape}`, [...(looks.get(`${s.colour} ${s.shape}`) ?? []), s]);
  const tiny = [...looks.values()].filter((m) => m.length <= 8 && m.every((s) => s.size * k <= MAX_DETAIL_PX.shape));
  if (tiny.length === 0) return null;
  // groups of two or more make better counting questions; single ones when there is nothing else
  const several = tiny.filter((m) => m.length >= 2);
  const members = rng.pick(several.length > 0 && rng.next() < 0.8 ? several : tiny);
  const n = members.length;
  const { colour, shape } = members[0]!;
  const window = countWindow(rng, n);
  if (!window) return null;
  const distractors = window.filter((c) => c !== n).map(String);
  const statementOf = (c: string): string => {
    const count = Number(c);
    if (count === 0) return `there are no ${colour} ${PLURAL[shape]}`;
    return count === 1 ? `there is one ${colour} ${shape}` : `there are ${NUMBER_WORDS[count]} ${colour} ${PLURAL[shape]}`;
  };
  const { options, answer, statements } = shuffled(rng, String(n), distractors, statementOf);
  return {
    category: 'counting', question: `How many ${colour} ${PLURAL[shape]} are there in the image?`, options, answer, statements,
    prompt: `${colour} ${PLURAL[shape]}`, evidence: evidence(members, Math.max(...members.map((s) => s.size)) * k, lowres),
  };
}

function lookalike(scene: Scene, rng: Rng, k: number, lowres: number): QuestionDraft | null {
  const shapes = scene.objects.filter((o): o is ShapeObject => o.kind === 'shape');
  const signs = scene.objects.filter((o): o is SignObject => o.kind === 'sign');
  const hasShape = (colour: string, shape: string): boolean => shapes.some((s) => s.colour === colour && s.shape === shape);
  const hasSign = (colour: string, code: string): boolean => signs.some((s) => s.colour === colour && s.label === code);
  const tiny = (o: SceneObject): boolean => (o.kind === 'sign' ? signGlyphPx(o) * k <= MAX_DETAIL_PX.glyph : o.size * k <= MAX_DETAIL_PX.shape);
  const candidates = scene.objects.filter(tiny);
  if (candidates.length === 0) return null;
  // objects with a look-alike in the scene first: there, telling them apart matters
  const paired = new Set(scene.objects.flatMap((o) => (o.lookalikeOf === null ? [] : [o.id, o.lookalikeOf])));
  const preferred = candidates.filter((o) => paired.has(o.id));
  const target = rng.pick(preferred.length > 0 && rng.next() < 0.7 ? preferred : candidates);
  const truth: Described = target.kind === 'sign' ? { colour: target.colour, sign: true, what: target.label } : { colour: target.colour, sign: false, what: target.shape };
  const absent = (d: Described): boolean => !(d.sign ? hasSign(d.colour, d.what) : hasShape(d.colour, d.what));
  const variants = aroundHiddenCentre(rng, truth, describedStep, describe, absent);
  if (!variants) return null;
  const distractors = variants.map(describe);
  const { options, answer, statements } = shuffled(rng, describe(truth), distractors, (o) => o);
  const detail = target.kind === 'sign' ? signGlyphPx(target) : target.size;
  return {
    category: 'lookalike', question: `Which of these is in the image: ${options.join(', ')}?`, options, answer, statements,
    prompt: options.join(' or '), evidence: evidence([target], detail * k, lowres),
  };
}

const MAKERS: Readonly<Record<QaCategory, (scene: Scene, rng: Rng, k: number, lowres: number) => QuestionDraft | null>> = {
  'sign-reading': signReading,
  attribute,
  counting,
  lookalike,
};

/**
 * Up to `perCategory` questions (default one) per category for a scene, in the order
 * `categories` gives, each about other objects than the category's earlier ones, skipping
 * categories the scene offers no 4K-only question for. `lowres` is the low-res side the details
 * are measured at (the image's long side is squashed to it). Benchmarks ask one per category;
 * training may ask more of each rendered scene.
 */
export function sceneQuestions(scene: Scene, rng: Rng, options: { lowres?: number; categories?: readonly QaCategory[]; perCategory?: number } = {}): QuestionDraft[] {
  const lowres = options.lowres ?? 378;
  const perCategory = options.perCategory ?? 1;
  const k = lowres / Math.max(scene.width, scene.height);
  const out: QuestionDraft[] = [];
  for (const c of options.categories ?? QA_CATEGORIES) {
    const asked = new Set<string>();
    // a few tries a question: a maker draws its object at random and may draw one already asked about
    for (let attempt = 0; attempt < 4 * perCategory && asked.size < perCategory; attempt++) {
      const q = MAKERS[c](scene, rng, k, lowres);
      if (!q) {
        if (perCategory === 1) break;
        continue;
      }
      const about = [...q.evidence.object_ids].sort((a, b) => a - b).join(',');
      if (asked.has(about)) continue;
      asked.add(about);
      out.push(q);
    }
  }
  return out;
}

/** The Rng of image `index`'s questions (independent of the scene's own stream). */
export function questionRng(seed: number, index: number): Rng {
  return new Rng((Math.imul(seed ^ 0x5bd1e995, 0x27d4eb2d) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0).fork();
}
