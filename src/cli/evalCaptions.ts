/**
 * `ps3 eval captions --model VILA_DIR --method M[,M...] [--seed S] [--count N] [--captions K] --out FILE`:
 * does each method's LM read the image? Held-out local captions scored teacher-forced with their
 * own scene's tokens and with another scene's (src/eval/captionReading.ts); JSON report plus a bar
 * chart beside it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { checkHeldOutSeed } from '../eval/retrieval.js';
import { CONTENT_KINDS, evaluateCaptionReading, type CaptionReadingReport } from '../eval/captionReading.js';
import { renderPlot, type PlotSpec } from '../eval/plot.js';
import { isVilaFolder } from '../mllm/config.js';
import { disposeVilaHd, loadVilaHd } from '../mllm/model.js';
import { GLYPH_CATEGORY, OBJECT_COLOUR_CATEGORY, OBJECT_SHAPE_CATEGORY, SIGN_CATEGORY } from '../mllm/trainData.js';
import { parseMethod, type EncodeMethod } from '../model/baselines.js';
import { outputFile, positiveInt, seedOption } from './inputs.js';
import { progressBar } from './progress.js';

export const CAPTIONS_HELP = `
Each of --count held-out synthetic scenes (seeds from --seed, default ${HELDOUT_SEED_BASE}) is asked
for --captions of its local captions, as \`ps3 train-mllm --task captions\` asks (ps3 looks at
the caption's region). The LM is teacher-forced on each caption twice: with its own scene's
visual tokens and with the next scene's. Reported: the mean negative log-likelihood per word and
the share of words the LM's next-word guess gets right, over all words and over the words that
name what is seen (colours, shapes, characters, counts). An LM that does not read the image
scores the same on both; "reading" is own minus other.`;

export interface EvalCaptionsCliOptions {
  backend?: string;
  model?: string;
  method?: string;
  seed?: string;
  count?: string;
  captions?: string;
  glyphs?: boolean;
  readObjects?: boolean;
  force?: boolean;
  out?: string;
}

/** What a glyphs report's samples are: with `--read-objects` its objects too. */
const readSamples = (r: CaptionReadingReport): string => (r.own_image.by_category[OBJECT_SHAPE_CATEGORY] ? 'labels, signs and objects' : 'labels and signs');

const signed = (x: number, digits: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;

export function formatCaptionReading(r: CaptionReadingReport): string {
  const pct = (x: number): string => (Number.isNaN(x) ? '-' : `${(100 * x).toFixed(1)}%`);
  const of = (x: CaptionReadingReport['own_image'], c: string, k: 'first_word_accuracy' | 'exact_accuracy'): number => x.by_category[c]?.[k] ?? NaN;
  const glyphs = r.task === 'glyphs'
    ? [
        `  labels' characters read, own / other: ${pct(of(r.own_image, GLYPH_CATEGORY, 'first_word_accuracy'))} / ${pct(of(r.other_image, GLYPH_CATEGORY, 'first_word_accuracy'))} of ${r.own_image.by_category[GLYPH_CATEGORY]?.count ?? 0}`,
        `  signs read whole (first character), own / other: ${pct(of(r.own_image, SIGN_CATEGORY, 'exact_accuracy'))} (${pct(of(r.own_image, SIGN_CATEGORY, 'first_word_accuracy'))}) / ${pct(of(r.other_image, SIGN_CATEGORY, 'exact_accuracy'))} (${pct(of(r.other_image, SIGN_CATEGORY, 'first_word_accuracy'))}) of ${r.own_image.by_category[SIGN_CATEGORY]?.count ?? 0}`,
        // the object samples, when asked: a colour or shape named whole
        ...([[OBJECT_COLOUR_CATEGORY, 'colours'], [OBJECT_SHAPE_CATEGORY, 'shapes']] as const)
          .filter(([c]) => r.own_image.by_category[c] !== undefined)
          .map(([c, what]) => `  objects' ${what} named, own / other: ${pct(of(r.own_image, c, 'exact_accuracy'))} / ${pct(of(r.other_image, c, 'exact_accuracy'))} of ${r.own_image.by_category[c]!.count}`),
      ]
    : [];
  return [
    `${r.method}: ${r.captions} ${r.task === 'glyphs' ? readSamples(r) : 'captions'} of ${r.images} scenes (${r.content_words} content words of ${r.words})`,
    ...glyphs,
    `  own image    NLL ${r.own_image.nll.toFixed(3)}  words ${pct(r.own_image.word_accuracy)}  content words ${pct(r.own_image.content_accuracy)}`,
    `  other image  NLL ${r.other_image.nll.toFixed(3)}  words ${pct(r.other_image.word_accuracy)}  content words ${pct(r.other_image.content_accuracy)}`,
    `  by kind, own / other: ${CONTENT_KINDS.map((k) => `${k} ${pct(r.own_image.by_kind[k])} / ${pct(r.other_image.by_kind[k])} (${r.content_words_by_kind[k]})`).join(', ')}`,
    `  reading      content words ${signed(100 * r.reading.content_accuracy, 1)} points, NLL ${signed(-r.reading.nll, 3)} with its own image`,
  ].join('\n');
}

function chart(reports: readonly CaptionReadingReport[], title: string): PlotSpec {
  // glyphs: every character of the answer (a label's one, a sign's code)
  const score = (x: CaptionReadingReport['own_image']): number => (reports[0]?.task === 'glyphs' ? x.exact_accuracy : x.content_accuracy);
  return {
    title,
    xLabel: 'method',
    yLabel: reports[0]?.task === 'glyphs' ? `${readSamples(reports[0])} read whole (%)` : 'content words guessed (%)',
    kind: 'bar',
    xTickLabels: reports.map((r) => r.method),
    yDomain: [0, 100],
    series: [
      { name: 'own image', points: reports.map((r, i) => ({ x: i, y: 100 * score(r.own_image), label: (100 * score(r.own_image)).toFixed(1) })) },
      { name: "another scene's image", points: reports.map((r, i) => ({ x: i, y: 100 * score(r.other_image), label: (100 * score(r.other_image)).toFixed(1) })) },
    ],
  };
}

export async function evalCaptionsCommand(o: EvalCaptionsCliOptions): Promise<number> {
  if (!o.model) throw new UserError('--model DIR is required (a VILA-HD folder)');
  if (!o.out) throw new UserError('--out FILE is required (the JSON report; the chart goes beside it as .png)');
  if (!fs.existsSync(o.model)) throw new UserError(`--model ${o.model}: model folder not found`);
  if (!isVilaFolder(o.model)) throw new UserError(`--model ${o.model}: not a VILA-HD folder (config.json model_type is not "vila-hd")`);
  const out = outputFile('--out', o.out);
  const methods: EncodeMethod[] = [...new Set((o.method ?? 'ps3').split(',').map((m) => parseMethod(m.trim())))];
  const count = positiveInt('count', o.count) ?? 16;
  const captions = positiveInt('captions', o.captions) ?? 4;
  if (count < 2) throw new UserError('--count must be at least 2 (each caption is also scored with another scene\'s image)');
  if (captions < 1 || captions > 32) throw new UserError(`--captions must be from 1 to 32, got ${captions}`);
  const seed = seedOption(o.seed) ?? HELDOUT_SEED_BASE;
  checkHeldOutSeed(seed, o.force ?? false);
  const task = o.glyphs ? 'glyphs' : 'captions';
  if (o.readObjects && !o.glyphs) throw new UserError('--read-objects adds the objects to the reading samples: give --glyphs too');
  if (o.glyphs && methods.some((m) => m !== 'ps3')) throw new UserError(`--glyphs reads a label's block of a look, which only --method ps3 has (got --method ${methods.join(',')})`);
  await initEngine(o);
  const model = loadVilaHd(o.model, { methods });
  const reports: CaptionReadingReport[] = [];
  try {
    for (const method of methods) {
      const bar = progressBar(2 * count, `captions ${method} (scenes encoded, then scored)`);
      reports.push(await evaluateCaptionReading(model, { method, seed, images: count, captions, task, ...(o.readObjects ? { objects: true } : {}), onProgress: (done) => bar.update(done) }));
      bar.stop();
    }
  } finally {
    disposeVilaHd(model);
  }
  for (const r of reports) process.stdout.write(`${formatCaptionReading(r)}\n`);
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify({ model: path.resolve(o.model), seed, count, task, ...(o.glyphs ? { objects: o.readObjects ?? false } : { captions }), reports }, null, 2)}\n`);
  const picture = out.replace(/\.json$/i, '') + '.png';
  await renderPlot(chart(reports, `${task === 'glyphs' ? 'Characters' : 'Caption words'} read, ${count} held-out scenes`), picture);
  process.stderr.write(`wrote ${out} and ${picture}\n`);
  return 0;
}
