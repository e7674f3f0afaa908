/**
 * What `eval qa` shares between its two answerers (the encoder alone, evalQa.ts, and a VILA-HD
 * folder's LMs, evalQaVila.ts): the options read once, the methods' runs (ps3 once per --looks
 * entry) each behind a progress bar, a run that ran the engine out of memory stopping the runs
 * after it, and the report's common fields.
 */
import path from 'node:path';
import { UserError } from '../errors.js';
import { ENCODE_METHODS, parseMethod, type EncodeMethod } from '../model/baselines.js';
import type { BenchItem } from '../eval/qa/format.js';
import { roundedOptionsOnly } from '../eval/qa/optionsOnly.js';
import type { LookCount } from '../model/selection.js';
import { positiveInt } from './inputs.js';
import { progressBar } from './progress.js';

export interface QaRun {
  readonly method: EncodeMethod;
  readonly looks?: LookCount;
}

export interface QaSettings {
  readonly methods: EncodeMethod[];
  readonly runs: QaRun[];
  readonly tokens: number | undefined;
  readonly resolution: number | undefined;
  readonly tileBatch: number | undefined;
}

function list(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** --method, --looks, --tokens, --resolution and --tile-batch, checked. */
export function qaSettings(o: { method?: string; looks?: string | undefined; tokens?: string | undefined; resolution?: string | undefined; tileBatch?: string | undefined }): QaSettings {
  const methods = list(o.method ?? 'ps3').map(parseMethod);
  if (o.looks !== undefined && o.tokens !== undefined) throw new UserError('give --looks or --tokens, not both');
  const looksList: Array<LookCount | undefined> = o.looks === undefined ? [undefined] : list(o.looks).map((l) => (l === 'all' ? 'all' : positiveInt('looks', l)!));
  const tokens = positiveInt('tokens', o.tokens);
  const runs = methods.flatMap((m): QaRun[] => (m === 'ps3' && tokens === undefined ? looksList.map((l) => ({ method: m, ...(l !== undefined ? { looks: l } : {}) })) : [{ method: m }]));
  return { methods, runs, tokens, resolution: positiveInt('resolution', o.resolution), tileBatch: positiveInt('tile-batch', o.tileBatch) };
}

/** A run's name in bars and messages: the method, and for ps3 its looks or token budget (plus `suffix`). */
export function qaRunLabel(run: QaRun, tokens: number | undefined, suffix = ''): string {
  return run.method === 'ps3' ? `ps3${tokens !== undefined ? ` ${tokens} tokens` : ` ${run.looks ?? 1} look(s)`}${suffix}` : run.method;
}

interface RunReport {
  readonly status: 'ok' | 'out of memory';
  readonly answered: number;
  readonly error: string | null;
  readonly aborted: boolean;
}

/** Each run answered by `answer`, in order; after a real allocation failure the rest are not run (the WASM module is gone). */
export async function runQaMethods<R extends RunReport>(
  runs: readonly QaRun[],
  questions: number,
  label: (run: QaRun) => string,
  answer: (run: QaRun, onProgress: (done: number, total: number, correct: number) => void) => Promise<R>,
): Promise<{ reports: R[]; notRun: EncodeMethod[] }> {
  const reports: R[] = [];
  let aborted: string | null = null;
  for (const run of runs) {
    if (aborted) {
      process.stderr.write(`${label(run)}: not run (${aborted})\n`);
      continue;
    }
    const bar = progressBar(questions, label(run), 'acc {acc}');
    const report = await answer(run, (done, _total, correct) => bar.update(done, { acc: `${((100 * correct) / done).toFixed(1)}%` }));
    bar.stop();
    reports.push(report);
    if (report.status === 'out of memory') {
      process.stderr.write(`${label(run)}: out of memory after ${report.answered} questions: ${report.error}\n`);
      // a refusal by the estimate leaves the engine whole
      if (report.aborted) aborted = 'the engine stopped after running out of memory';
    }
  }
  return { reports, notRun: aborted ? runs.slice(reports.length).map((r) => r.method) : [] };
}

/** The report's fields both answerers write around their `reports`. */
export function qaResultFields(bench: string, items: readonly BenchItem[], otherImage: boolean | undefined, methods: readonly EncodeMethod[], notRun: readonly EncodeMethod[]) {
  return {
    benchmark: path.resolve(bench),
    questions: items.length,
    other_image: otherImage === true,
    // how much of the benchmark its options answer without the image
    options_only: roundedOptionsOnly(items),
    methods: ENCODE_METHODS.filter((m) => methods.includes(m)),
    not_run: notRun,
  };
}
