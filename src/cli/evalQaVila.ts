/**
 * `ps3 eval qa BENCH --model VILA_DIR --method ...`: when the model folder is a VILA-HD one,
 * each method's questions are answered by the LM trained for that method (src/eval/qa/vila.ts),
 * with the same flags, table and JSON report as the encoder-only evaluation, plus where ps3's
 * looks landed (evidence recall against random).
 */
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { ENCODE_METHODS, parseMethod } from '../model/baselines.js';
import { roundedOptionsOnly } from '../eval/qa/optionsOnly.js';
import { formatQaTable } from '../eval/qa/evaluate.js';
import type { LookCount } from '../model/selection.js';
import { evaluateVilaQa, type VilaQaReport } from '../eval/qa/vila.js';
import { disposeVilaHd, loadVilaHd } from '../mllm/model.js';
import { benchItems, writeQaOutputs, type EvalQaCliOptions } from './evalQa.js';
import { positiveInt } from './inputs.js';
import { progressBar } from './progress.js';

function list(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export async function evalQaVilaCommand(bench: string, o: EvalQaCliOptions): Promise<number> {
  if (o.preset) throw new UserError('give --model DIR or --preset NAME, not both');
  const items = benchItems(bench, o);
  const methods = list(o.method ?? 'ps3').map(parseMethod);
  if (o.looks !== undefined && o.tokens !== undefined) throw new UserError('give --looks or --tokens, not both');
  const looksList: Array<LookCount | undefined> = o.looks === undefined ? [undefined] : list(o.looks).map((l) => (l === 'all' ? 'all' : positiveInt('looks', l)!));
  const tokens = positiveInt('tokens', o.tokens);
  const resolution = positiveInt('resolution', o.resolution);
  const tileBatch = positiveInt('tile-batch', o.tileBatch);
  await initEngine(o);
  const model = loadVilaHd(o.model!, { methods });
  process.stderr.write(`eval qa: ${items.length} questions from ${bench}; VILA-HD ${model.source} on PS3 ${model.config.ps3Model}; methods ${methods.join(', ')}\n`);
  const runs: Array<{ method: (typeof methods)[number]; looks?: LookCount }> = methods.flatMap((m) => (m === 'ps3' && tokens === undefined ? looksList.map((l) => ({ method: m, ...(l !== undefined ? { looks: l } : {}) })) : [{ method: m }]));
  if (o.evidenceLooks && !methods.includes('ps3')) throw new UserError('--evidence-looks forces the evidence box into ps3\'s first look: give --method ps3');
  const reports: VilaQaReport[] = [];
  let aborted: string | null = null;
  try {
    for (const run of runs) {
      const label = run.method === 'ps3' ? `ps3${tokens !== undefined ? ` ${tokens} tokens` : ` ${run.looks ?? 1} look(s)`}${o.evidenceLooks ? ', evidence forced' : ''}` : run.method;
      if (aborted) {
        process.stderr.write(`${label}: not run (${aborted})\n`);
        continue;
      }
      const bar = progressBar(items.length, label, 'acc {acc}');
      const report = await evaluateVilaQa(model, items, {
        method: run.method,
        ...(run.looks !== undefined ? { looks: run.looks } : {}),
        ...(tokens !== undefined && run.method === 'ps3' ? { tokens } : {}),
        ...(resolution !== undefined ? { resolution } : {}),
        ...(tileBatch !== undefined ? { tileBatch } : {}),
        ...(o.evidenceLooks && run.method === 'ps3' ? { evidenceLooks: true } : {}),
        onProgress: (done, _total, correct) => bar.update(done, { acc: `${((100 * correct) / done).toFixed(1)}%` }),
      });
      bar.stop();
      reports.push(report);
      if (report.status === 'out of memory') {
        process.stderr.write(`${label}: out of memory after ${report.answered} questions: ${report.error}\n`);
        if (report.aborted) aborted = 'the engine stopped after running out of memory';
      }
    }
  } finally {
    disposeVilaHd(model);
  }
  process.stdout.write(`${formatQaTable(reports)}\n`);
  for (const r of reports) {
    if (r.evidence_recall_mean !== null) process.stdout.write(`${r.method}: evidence recall of the looks ${(100 * r.evidence_recall_mean).toFixed(1)}% (random choice of as many patches: ${(100 * r.random_recall_mean!).toFixed(1)}%)\n`);
  }
  const result = {
    benchmark: path.resolve(bench),
    model: path.resolve(o.model!),
    answered_by: 'vila-hd',
    questions: items.length,
    other_image: o.otherImage === true,
    // how much of the benchmark its options answer without the image
    options_only: roundedOptionsOnly(items),
    methods: ENCODE_METHODS.filter((m) => methods.includes(m)),
    not_run: aborted ? runs.slice(reports.length).map((r) => r.method) : [],
    reports,
  };
  await writeQaOutputs(o, bench, result, reports);
  return 0;
}
