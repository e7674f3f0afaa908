/**
 * `ps3 eval qa BENCH --model VILA_DIR --method ...`: when the model folder is a VILA-HD one,
 * each method's questions are answered by the LM trained for that method (src/eval/qa/vila.ts),
 * with the same flags, table and JSON report as the encoder-only evaluation, plus where ps3's
 * looks landed (evidence recall against random).
 */
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import type { EncodeMethod } from '../model/baselines.js';
import { formatQaTable } from '../eval/qa/evaluate.js';
import { evaluateVilaQa, type VilaQaReport } from '../eval/qa/vila.js';
import { disposeVilaHd, loadVilaHd, type VilaHd } from '../mllm/model.js';
import { textPrompts } from '../model/region.js';
import { evalTokenizer } from '../eval/qa/text.js';
import type { BenchItem } from '../eval/qa/format.js';
import { benchItems, writeQaOutputs, type EvalQaCliOptions } from './evalQa.js';
import { qaResultFields, qaRunLabel, qaSettings, runQaMethods, type QaRun } from './qaRuns.js';

export async function evalQaVilaCommand(bench: string, o: EvalQaCliOptions): Promise<number> {
  if (o.preset) throw new UserError('give --model DIR or --preset NAME, not both');
  const items = benchItems(bench, o);
  const { methods, runs, tokens, resolution, tileBatch } = qaSettings(o);
  if (o.evidenceLooks && !methods.includes('ps3')) throw new UserError('--evidence-looks forces the evidence box into ps3\'s first look: give --method ps3');
  if (o.evidenceOnly && !o.evidenceLooks) throw new UserError('--evidence-only cuts the forced look to the evidence box: give --evidence-looks too');
  if (o.hintPrompts && !methods.includes('ps3')) throw new UserError('--hint-prompts aims ps3\'s looks: give --method ps3');
  if (o.hintPrompts && o.evidenceLooks) throw new UserError('--hint-prompts aims the looks, --evidence-looks forces them: give one of them');
  if (o.hintPrompts && !items.some((i) => i.prompt !== undefined)) throw new UserError(`--hint-prompts: no item of ${bench} has a "prompt" field`);
  await initEngine(o);
  const model = loadVilaHd(o.model!, { methods, ...(o.hintPrompts ? { withText: true } : {}) });
  const promptOf = o.hintPrompts ? await hintPrompts(model, items) : undefined;
  process.stderr.write(`eval qa: ${items.length} questions from ${bench}; VILA-HD ${model.source} on PS3 ${model.config.ps3Model}; methods ${methods.join(', ')}\n`);
  const label = (run: QaRun): string => qaRunLabel(run, tokens, o.evidenceLooks ? `, evidence forced${o.evidenceOnly ? ' (its tokens only)' : ''}` : promptOf && run.method === 'ps3' ? ', hint prompts' : '');
  let answered: { reports: VilaQaReport[]; notRun: EncodeMethod[] };
  try {
    answered = await runQaMethods(runs, items.length, label, (run, onProgress) =>
      evaluateVilaQa(model, items, {
        method: run.method,
        ...(run.looks !== undefined ? { looks: run.looks } : {}),
        ...(tokens !== undefined && run.method === 'ps3' ? { tokens } : {}),
        ...(resolution !== undefined ? { resolution } : {}),
        ...(tileBatch !== undefined ? { tileBatch } : {}),
        ...(o.evidenceLooks && run.method === 'ps3' ? { evidenceLooks: true, ...(o.evidenceOnly ? { evidenceOnly: true } : {}) } : {}),
        ...(promptOf && run.method === 'ps3' ? { promptOf } : {}),
        onProgress,
      }),
    );
  } finally {
    disposeVilaHd(model);
  }
  const { reports, notRun } = answered;
  process.stdout.write(`${formatQaTable(reports)}\n`);
  for (const r of reports) {
    if (r.evidence_recall_mean !== null) process.stdout.write(`${r.method}: evidence recall of the looks ${(100 * r.evidence_recall_mean).toFixed(1)}% (random choice of as many patches: ${(100 * r.random_recall_mean!).toFixed(1)}%)\n`);
  }
  const result = { ...qaResultFields(bench, items, o.otherImage, methods, notRun), model: path.resolve(o.model!), answered_by: 'vila-hd', reports };
  await writeQaOutputs(o, bench, result, reports);
  return 0;
}

/**
 * `--hint-prompts`: the text tower's prompt of each item's `prompt` field, with the PS3 folder's
 * tokenizer; an item without one is aimed by the prompt head.
 */
async function hintPrompts(model: VilaHd, items: readonly BenchItem[]): Promise<(item: BenchItem) => Float32Array | null> {
  const tok = await evalTokenizer(model.ps3, model.ps3.folder);
  if (tok.source !== model.ps3.folder) process.stderr.write(`eval qa: warning: PS3 ${model.config.ps3Model} has no tokenizer.json; the hint prompts use the synthetic captions' word tokenizer\n`);
  const texts = [...new Set(items.flatMap((i) => (i.prompt === undefined ? [] : [i.prompt])))];
  const prompts = textPrompts(model.ps3, tok.tokenizer, texts);
  const byText = new Map(texts.map((t, k) => [t, prompts[k]!]));
  return (item) => (item.prompt === undefined ? null : byText.get(item.prompt)!);
}
