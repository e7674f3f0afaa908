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
import { loadBenchmark, type BenchItem } from '../eval/qa/format.js';
import { withOtherImages } from '../eval/qa/otherImage.js';
import { evaluateQa, formatQaTable, type QaReport } from '../eval/qa/evaluate.js';
import { evalTokenizer } from '../eval/qa/text.js';
import { renderPlot } from '../eval/plot.js';
import { benchmarkFile, modelFrom, outputFile, positiveInt, seedOption, warnOldGenerator } from './inputs.js';
import { qaResultFields, qaRunLabel, qaSettings, runQaMethods, type QaRun } from './qaRuns.js';
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
  /** with evidenceLooks: the LM reads only the look's tokens inside the evidence box */
  evidenceOnly?: boolean;
  /** ask each question of another scene's image (the image-swap control) */
  otherImage?: boolean;
  /** VILA-HD ps3: the looks aimed by the text tower's prompt of each item's prompt field */
  hintPrompts?: boolean;
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

export async function evalQaCommand(benchArg: string, o: EvalQaCliOptions): Promise<number> {
  const bench = benchmarkFile(benchArg);
  if (o.out) outputFile('--out', o.out);
  if (o.plot) outputFile('--plot', o.plot);
  seedOption(o.seed);
  // a VILA-HD folder answers with its language model
  if (o.model && isVilaFolder(o.model)) return evalQaVilaCommand(bench, o);
  if (o.evidenceLooks || o.evidenceOnly) throw new UserError(`${o.evidenceLooks ? '--evidence-looks' : '--evidence-only'} needs a VILA-HD --model (the LM reads the forced look)`);
  if (o.hintPrompts) throw new UserError('--hint-prompts needs a VILA-HD --model (the encoder alone already looks with the items\' prompts; --no-hints turns that off)');
  const items = benchItems(bench, o);
  const { methods, runs, tokens, resolution, tileBatch } = qaSettings(o);
  await initEngine(o);
  const model = await modelFrom(o, 'all');
  const tok = await evalTokenizer(model, model.folder);
  if (tok.source !== model.folder) process.stderr.write(`ps3: warning: ${o.model ?? model.source} has no tokenizer.json; using the synthetic captions' word tokenizer\n`);
  process.stderr.write(`eval qa: ${items.length} questions from ${bench}; model ${model.source}; methods ${methods.join(', ')}\n`);

  const label = (run: QaRun): string => qaRunLabel(run, tokens);
  const { reports, notRun } = await runQaMethods(runs, items.length, label, (run, onProgress) =>
    evaluateQa(model, tok.tokenizer, items, {
      method: run.method,
      ...(run.looks !== undefined ? { looks: run.looks } : {}),
      ...(tokens !== undefined && run.method === 'ps3' ? { tokens } : {}),
      ...(resolution !== undefined ? { resolution } : {}),
      ...(tileBatch !== undefined ? { tileBatch } : {}),
      hints: o.hints ?? true,
      onProgress,
    }),
  );
  process.stdout.write(`${formatQaTable(reports)}\n`);
  const result = { ...qaResultFields(bench, items, o.otherImage, methods, notRun), model: model.source, tokenizer: tok.source, reports };
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
