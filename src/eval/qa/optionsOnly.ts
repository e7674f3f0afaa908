/**
 * A reader that sees only the options: how much of a multiple-choice benchmark can be answered
 * without the image. Each option gets a "centrality" score — codes: minus the summed character
 * differences to the other options; colours: minus the RGB distance to the options' mean; counts:
 * the count; other text (look-alike descriptions, shapes): the words it shares with the others —
 * and the reader answers the option of one fixed rank of that score, the rank that does best in
 * each category. Options made as edits of the truth put the truth at one rank every time (the
 * most central); options drawn around a hidden centre (src/data/qa/options.ts) leave every rank
 * near chance.
 * The best rank is chosen on the questions themselves, so this is an upper bound of such readers.
 */
import { COLOURS } from '../../data/scene/colours.js';

export interface OptionsOnlyItem {
  readonly category: string;
  readonly options: readonly string[];
  readonly answer: number;
}

export interface OptionsOnlyReport {
  /** accuracy over all questions, each category answered at its best rank */
  readonly accuracy: number;
  readonly per_category: Record<string, { questions: number; accuracy: number }>;
}

const RGB = new Map<string, readonly number[]>(COLOURS.map((c) => [c.name, c.rgb]));

function centrality(item: OptionsOnlyItem): number[] {
  const o = item.options;
  if (item.category === 'counting' && o.every((x) => /^\d+$/.test(x))) return o.map(Number);
  if (o.every((x) => RGB.has(x))) {
    const mean = [0, 1, 2].map((k) => o.reduce((s, c) => s + RGB.get(c)![k]!, 0) / o.length);
    return o.map((c) => -Math.hypot(...RGB.get(c)!.map((v, k) => v - mean[k]!)));
  }
  if (o.every((x) => /^[A-Z0-9]+$/.test(x))) {
    const differ = (a: string, b: string): number => [...a].filter((ch, k) => ch !== b[k]).length + Math.abs(a.length - b.length);
    return o.map((a) => -o.reduce((s, b) => s + differ(a, b), 0));
  }
  const words = o.map((a) => new Set(a.split(' ')));
  return words.map((w, i) => words.reduce((s, v, j) => s + (i === j ? 0 : [...w].filter((x) => v.has(x)).length), 0));
}

export function optionsOnlyAccuracy(items: readonly OptionsOnlyItem[]): OptionsOnlyReport {
  const hits = new Map<string, { n: number; rank: number[] }>();
  for (const item of items) {
    const s = centrality(item);
    const t = s[item.answer]!;
    const below = s.filter((x) => x < t).length;
    const ties = s.filter((x) => x === t).length;
    const h = hits.get(item.category) ?? { n: 0, rank: new Array<number>(item.options.length).fill(0) };
    hits.set(item.category, h);
    h.n++;
    // a tie shares the question between the ranks it spans
    for (let r = below; r < below + ties; r++) h.rank[r] = (h.rank[r] ?? 0) + 1 / ties;
  }
  const perCategory: OptionsOnlyReport['per_category'] = {};
  let correct = 0;
  for (const [c, h] of hits) {
    const best = Math.max(...h.rank);
    correct += best;
    perCategory[c] = { questions: h.n, accuracy: best / h.n };
  }
  return { accuracy: items.length ? correct / items.length : 0, per_category: perCategory };
}

/** The report with accuracies to three decimals, as reports print them. */
export function roundedOptionsOnly(items: readonly OptionsOnlyItem[]): OptionsOnlyReport {
  const r = optionsOnlyAccuracy(items);
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  return { accuracy: r3(r.accuracy), per_category: Object.fromEntries(Object.entries(r.per_category).map(([c, v]) => [c, { questions: v.questions, accuracy: r3(v.accuracy) }])) };
}
