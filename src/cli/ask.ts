/**
 * `ps3 ask <image|folder|questions.jsonl> --model DIR ["question"] [--options "A|B|C"]`:
 * VILA-HD answers; per question the answer, the tokens used and (ps3) pictures of where it
 * looked. A folder (the same question for every image) or a JSONL of questions (lines
 * `{"image": ..., "question": ..., "options": [...]}`, images relative to the file) streams with
 * a progress bar; a bad image is reported and skipped (exit 2 at the end).
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { loadPixelValues } from '../io/image.js';
import { UserError, isUserError } from '../errors.js';
import { parseMethod } from '../model/baselines.js';
import { answerQuestion, type AskOptions } from '../mllm/answer.js';
import { writeLookPictures } from '../eval/lookPictures.js';
import { disposeVilaHd, loadVilaHd } from '../mllm/model.js';
import { listImages, positiveInt } from './inputs.js';
import { progressBar } from './progress.js';

export interface AskCliOptions {
  backend?: string;
  model?: string;
  method?: string;
  options?: string;
  looks?: string;
  tokens?: string;
  out?: string;
  json?: boolean;
}

interface Job {
  readonly image: string;
  readonly question: string;
  readonly options?: string[];
  readonly id: string;
}

function jobsFrom(target: string, question: string | undefined, options: string[] | undefined): Job[] {
  if (target.endsWith('.jsonl')) {
    if (question !== undefined) throw new UserError('a JSONL of questions carries its own questions: give no question text');
    let text: string;
    try {
      text = fs.readFileSync(target, 'utf8');
    } catch (e) {
      throw new UserError(`${target}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    const dir = path.dirname(path.resolve(target));
    return text.split('\n').flatMap((raw, i) => {
      if (raw.trim() === '') return [];
      let j: { image?: unknown; question?: unknown; options?: unknown; id?: unknown };
      try {
        j = JSON.parse(raw) as typeof j;
      } catch (e) {
        throw new UserError(`${target}:${i + 1}: not valid JSON (${(e as Error).message})`);
      }
      if (typeof j.image !== 'string' || j.image === '') throw new UserError(`${target}:${i + 1}: field image: expected a path`);
      if (typeof j.question !== 'string') throw new UserError(`${target}:${i + 1}: field question: expected text`);
      if (j.options !== undefined && (!Array.isArray(j.options) || !j.options.every((x) => typeof x === 'string'))) throw new UserError(`${target}:${i + 1}: field options: expected a list of strings`);
      return [{ image: path.resolve(dir, j.image), question: j.question, ...(j.options ? { options: j.options as string[] } : {}), id: typeof j.id === 'string' ? j.id : `line${i + 1}` }];
    });
  }
  if (question === undefined) throw new UserError('give the question text after the image (or a JSONL of questions)');
  return listImages(target).map((image) => ({ image, question, ...(options ? { options } : {}), id: path.basename(image, path.extname(image)) }));
}

/**
 * The answer as the text line shows it. An LM trained on multiple-choice questions often ends a
 * written answer at once; an empty field would read as a fault, so the line says what happened.
 */
export function writtenAnswer(text: string, multipleChoice: boolean): string {
  if (text !== '' || multipleChoice) return text;
  return '(no words: the LM ended its answer at once; an LM trained on multiple-choice questions answers with --options "A|B|...")';
}

export async function askCommand(target: string, question: string | undefined, o: AskCliOptions): Promise<number> {
  if (!o.model) throw new UserError('--model DIR is required (a VILA-HD folder)');
  const method = parseMethod(o.method ?? 'ps3');
  const options = o.options === undefined ? undefined : o.options.split('|').map((s) => s.trim());
  if (options && (options.length < 2 || options.some((x) => x === ''))) throw new UserError(`--options must be two or more non-empty answers separated by "|", got "${o.options}"`);
  if (question !== undefined && question.trim() === '') throw new UserError('the question is empty');
  if (o.looks !== undefined && o.tokens !== undefined) throw new UserError('give --looks or --tokens, not both');
  const looks = positiveInt('looks', o.looks);
  const tokens = positiveInt('tokens', o.tokens);
  if (!fs.existsSync(target)) throw new UserError(`${target}: no such file or folder`);
  const jobs = jobsFrom(target, question, options);
  if (jobs.length === 0) throw new UserError(`${target}: no images or questions`);
  for (const j of jobs) if (j.question.trim() === '') throw new UserError(`${j.id}: the question is empty`);
  await initEngine(o);
  const model = loadVilaHd(o.model, { methods: [method] });
  const cfg = model.ps3.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const out = o.out ?? 'ask-out';
  fs.mkdirSync(out, { recursive: true });
  const ask: AskOptions = { ...(looks !== undefined ? { looks } : {}), ...(tokens !== undefined ? { tokens } : {}) };
  const bar = jobs.length > 1 ? progressBar(jobs.length, 'ask') : null;
  const results: Array<Record<string, unknown>> = [];
  let failed = 0;
  try {
    for (const [n, job] of jobs.entries()) {
      try {
        const pv = await loadPixelValues(job.image, { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
        const a = await answerQuestion(model, method, { data: pv.pixels, batch: 1, height: S, width: S }, job.question, job.options, ask);
        a.visual?.merged.dispose();
        const pictures = a.selection ? await writeLookPictures(out, job.id, pv.pixels, S, cfg.scales, a.selection) : [];
        const row = { id: job.id, image: job.image, question: job.question, answer: a.text, ...(job.options ? { option: a.predicted, scores: a.scores } : {}), trunk_tokens: a.trunkTokens, visual_tokens: a.visualTokens, ms: Math.round(a.msEncode + a.msLm), pictures };
        results.push(row);
        fs.appendFileSync(path.join(out, 'answers.jsonl'), `${JSON.stringify(row)}\n`);
        if (o.json) process.stdout.write(`${JSON.stringify(row)}\n`);
        else process.stdout.write(`${job.id}\t${writtenAnswer(a.text, job.options !== undefined)}\t${a.trunkTokens} trunk tokens, ${a.visualTokens} visual tokens\n`);
      } catch (e) {
        // one bad image of many is reported and skipped; a bad question or a single input stops here
        if (!isUserError(e) || jobs.length === 1 || !/cannot decode|cannot read|not found|no such/i.test(e.message)) throw e;
        failed++;
        process.stderr.write(`ps3: ${e.message}\n`);
      }
      bar?.update(n + 1);
    }
  } finally {
    bar?.stop();
    disposeVilaHd(model);
  }
  return failed ? 2 : 0;
}
