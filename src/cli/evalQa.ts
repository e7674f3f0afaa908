/**
 * `ps3 eval qa <bench.jsonl> (--model DIR | --preset NAME) --method ps3|lowres|anyres|s2[,...]
 * [--looks N[,N...] | --tokens N] [--resolution R] [--no-hints] [--out FILE] [--plot FILE]`:
 * multiple-choice accuracy of encoders on a 4KPro-style benchmark, answered with the encoder
 * alone (see QA_HELP), with tokens and latency; a table on stdout, JSON and a plot on request.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { ENCODE_METHODS, parseMethod, type EncodeMethod } from '../model/baselines.js';
import { loadBenchmark, type BenchItem } from '../eval/qa/format.js';
import { withOtherImages } from '../eval/qa/otherImage.js';
import { roundedOptionsOnly } from '../eval/qa/optionsOnly.js';
import { evaluateQa, formatQaTable, type QaReport } from '../eval/qa/evaluate.js';
import { evalTokenizer } from '../eval/qa/text.js';
import { renderPlot } from '../eval/plot.js';
import type { LookCount } from '../model/selection.js';
import { modelFrom, outputFile, positiveInt, seedOption, warnOldGenerator } from './inputs.js';
import { progressBar } from './progress.js';
import { isVilaFolder } from '../mllm/config.js';
import { evalQaVilaCommand } from './evalQaVila.js';

/** The method, for `ps3 eval qa --help`. */
export const QA_HELP = `
How a question is answered (the encoder alone, no language model):
  1. prompt: the item's "prompt" field (caption-style, never the answer) or, with --no-hints,
     the question text -> text tower -> PS3 prompt; ps3 selects high-res patches top-down with it.
  2. image -> the method's pooled feature (L2-normalised):
       ps3     low-res pass + N looks (--looks, default 1) or a token budget (--tokens); the chosen
               high-res tokens, after the final norm, pooled by the MAP head
       lowres  the low-res tokens only (scales[0]), MAP-pooled
       anyres  ceil(R/s0)^2 tiles of s0 px at R (--resolution, default the top scale), each an
               independent low-res pass with the native position embedding, plus a global
               low-res view; all tokens MAP-pooled together
       s2      at every scale s <= R, (s/s0)^2 tiles through the trunk; each scale's tokens
               MAP-pooled, the scale features averaged (S²'s channel concat has no text tower)
  3. each option -> a statement: the item's "statements" (caption-style) or, with --no-hints,
     question + " " + option -> text tower -> L2-normalised text feature.
  4. score = cosine(image feature, statement feature); the highest-scoring option is the answer.
Tokens: tokens through the trunk per question. Latency: median per question of encode + text
tower (image decoding apart); methods that ignore the question encode each image once and
charge that time to each of its questions. A method that cannot fit the 4 GiB WASM heap is
reported as "out of memory".`;

export interface EvalQaCliOptions {
  backend?: string;
  model?: string;
  preset?: string;
  seed?: string;
  method: string;
  looks?: string;
  tokens?: string;
  resolution?: string;
  tileBatch?: string;
  /** commander's --no-hints sets this false */
  hints?: boolean;
  limit?: string;
  out?: string;
  plot?: string;
  /** VILA-HD ps3: the evidence box forced into the first look */
  evidenceLooks?: boolean;
  /** ask each question of another scene's image (the image-swap control) */
  otherImage?: boolean;
}

/** The benchmark's items, the first --limit of them, asked of other scenes' images with --other-image. */
export function benchItems(bench: string, o: EvalQaCliOptions): BenchItem[] {
  let items = loadBenchmark(bench);
  warnOldGenerator(bench);
  const limit = positiveInt('limit', o.limit);
  if (limit !== undefined && limit > 0) items = items.slice(0, limit);
  if (!o.otherImage) return items;
  if (o.evidenceLooks) throw new UserError('--evidence-looks forces each question\'s own evidence box, which --other-image takes away: give one of them');
  process.stderr.write('eval qa: --other-image: each question is asked of another scene\'s image (a control: what is still right did not come from the image)\n');
  return withOtherImages(items);
}

function list(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export async function evalQaCommand(bench: string, o: EvalQaCliOptions): Promise<number> {
  if (o.out) outputFile('--out', o.out);
  if (o.plot) outputFile('--plot', o.plot);
  seedOption(o.seed);
  // a VILA-HD folder answers with its language model
  if (o.model && isVilaFolder(o.model)) return evalQaVilaCommand(bench, o);
  if (o.evidenceLooks) throw new UserError('--evidence-looks needs a VILA-HD --model (the LM reads the forced look)');
  await initEngine(o);
  const items = benchItems(bench, o);
  const methods = list(o.method ?? 'ps3').map(parseMethod);
  if (o.looks !== undefined && o.tokens !== undefined) throw new UserError('give --looks or --tokens, not both');
  const looksList: Array<LookCount | undefined> = o.looks === undefined ? [undefined] : list(o.looks).map((l) => (l === 'all' ? 'all' : positiveInt('looks', l)!));
  const tokens = positiveInt('tokens', o.tokens);
  const resolution = positiveInt('resolution', o.resolution);
  const tileBatch = positiveInt('tile-batch', o.tileBatch);
  const model = await modelFrom(o, 'all');
  const tok = await evalTokenizer(model, model.folder);
  if (tok.source !== model.folder) process.stderr.write(`ps3: warning: ${o.model ?? model.source} has no tokenizer.json; using the synthetic captions' word tokenizer\n`);
  process.stderr.write(`eval qa: ${items.length} questions from ${bench}; model ${model.source}; methods ${methods.join(', ')}\n`);

  const runs: Array<{ method: EncodeMethod; looks?: LookCount }> = methods.flatMap((m) => (m === 'ps3' && tokens === undefined ? looksList.map((l) => ({ method: m, ...(l !== undefined ? { looks: l } : {}) })) : [{ method: m }]));
  const reports: QaReport[] = [];
  let aborted: string | null = null;
  for (const run of runs) {
    const label = run.method === 'ps3' ? `ps3${tokens !== undefined ? ` ${tokens} tokens` : ` ${run.looks ?? 1} look(s)`}` : run.method;
    if (aborted) {
      process.stderr.write(`${label}: not run (${aborted})\n`);
      continue;
    }
    const bar = progressBar(items.length, label, 'acc {acc}');
    const report = await evaluateQa(model, tok.tokenizer, items, {
      method: run.method,
      ...(run.looks !== undefined ? { looks: run.looks } : {}),
      ...(tokens !== undefined && run.method === 'ps3' ? { tokens } : {}),
      ...(resolution !== undefined ? { resolution } : {}),
      ...(tileBatch !== undefined ? { tileBatch } : {}),
      hints: o.hints ?? true,
      onProgress: (done, _total, correct) => bar.update(done, { acc: `${((100 * correct) / done).toFixed(1)}%` }),
    });
    bar.stop();
    reports.push(report);
    if (report.status === 'out of memory') {
      process.stderr.write(`${label}: out of memory after ${report.answered} questions: ${report.error}\n`);
      // a real allocation failure kills the WASM module; a refusal by the estimate does not
      if (report.aborted) aborted = 'the engine stopped after running out of memory';
    }
  }
  process.stdout.write(`${formatQaTable(reports)}\n`);
  const result = {
    benchmark: path.resolve(bench),
    model: model.source,
    tokenizer: tok.source,
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

/** `--out`'s JSON report and `--plot`'s picture of an `eval qa` run (either may be absent). */
export async function writeQaOutputs(o: { out?: string | undefined; plot?: string | undefined }, bench: string, result: object, reports: readonly QaReport[]): Promise<void> {
  if (o.out) {
    fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
    fs.writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
    process.stderr.write(`wrote ${o.out}\n`);
  }
  if (o.plot) {
    fs.mkdirSync(path.dirname(path.resolve(o.plot)), { recursive: true });
    await renderPlot(accuracyPlot(reports, path.basename(path.dirname(path.resolve(bench)))), o.plot);
    process.stderr.write(`wrote ${o.plot}\n`);
  }
}

/** Accuracy against tokens, one point per run (out-of-memory runs marked at the top). */
function accuracyPlot(reports: readonly QaReport[], title: string) {
  const chance = reports[0] ? 100 * reports[0].chance : 25;
  const byMethod = new Map<string, QaReport[]>();
  for (const r of reports) byMethod.set(r.method, [...(byMethod.get(r.method) ?? []), r]);
  return {
    title: `Accuracy vs tokens — ${title}`,
    xLabel: 'tokens through the trunk per question',
    yLabel: 'accuracy (%)',
    kind: 'scatter' as const,
    logX: true,
    yDomain: [0, 100] as const,
    missingLabel: 'out of memory',
    hlines: [{ y: chance, label: `chance ${chance.toFixed(1)}%` }],
    series: [...byMethod].map(([method, rs]) => ({
      name: method,
      points: rs.map((r) => ({
        x: r.tokens_median ?? 1,
        y: r.status === 'ok' && r.accuracy !== null ? 100 * r.accuracy : null,
        ...(method === 'ps3' ? { label: r.settings.tokens !== null ? `${r.settings.tokens} tok` : `${r.settings.looks} look${r.settings.looks === 1 ? '' : 's'}` } : {}),
      })),
    })),
  };
}
