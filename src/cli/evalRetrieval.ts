/**
 * `ps3 eval retrieval (--data DIR | --synth) (--model DIR | --preset NAME) [--method
 * ps3,ps3-box,lowres,anyres,s2] [--candidates N] [--count M] [--out FILE]`: local retrieval —
 * rank each held-out region's true caption among N candidates from the image alone; top-1
 * accuracy against chance 1/N (src/eval/retrieval.ts says how each method scores).
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../tensor/engine.js';
import { UserError } from '../errors.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { evalTokenizer } from '../eval/qa/text.js';
import {
  evaluateRetrieval, formatRetrievalTable, retrievalTasks, RETRIEVAL_METHODS, shardRetrievalImages, synthRetrievalImages,
  type RetrievalImage, type RetrievalMethod, type RetrievalReport,
} from '../eval/retrieval.js';
import { modelFrom, outputFile, positiveInt, seedOption } from './inputs.js';
import { progressBar } from './progress.js';

export const RETRIEVAL_HELP = `
Each triple (image, box, caption) asks: which of N captions describes a region of this image?
Candidates: the true caption and N - 1 distractors. --distractors other (default): captions of other
images that no region of this image has, so exactly one candidate is true of the image. --distractors
same: the image's other regions first; every candidate is then true somewhere in the image, so only
the ps3-box oracle (which is given the box) can tell them apart.
  ps3      every candidate gets its own top-down look from its own prompt; its pooled high-res
           tokens are scored against that candidate; the best wins (N encodes per triple)
  ps3-box  ORACLE: the box forced as the selection map (pre-training layout), tokens in the box
           pooled; scored against every candidate (the box is ground truth, not a fair method)
  lowres, anyres, s2   one pooled feature per image (see \`ps3 eval qa --help\`)
Data: --data DIR (images/ and annotations/ shards; a manifest seed below ${HELDOUT_SEED_BASE} is
training data and is warned about) or, without it, held-out synthetic scenes rendered in memory
(--seed, default ${HELDOUT_SEED_BASE}; --size, default the model's top scale).`;

export interface EvalRetrievalCliOptions {
  backend?: string;
  data?: string;
  model?: string;
  preset?: string;
  seed?: string;
  size?: string;
  method: string;
  candidates: string;
  count: string;
  perImage?: string;
  distractors?: string;
  looks?: string;
  tokens?: string;
  force?: boolean;
  out?: string;
}

export async function evalRetrievalCommand(o: EvalRetrievalCliOptions): Promise<number> {
  if (o.out) outputFile('--out', o.out);
  const seedGiven = seedOption(o.seed);
  await initEngine(o);
  const methods = (o.method ?? 'ps3,lowres').split(',').map((m) => m.trim()).filter(Boolean);
  for (const m of methods) if (!(RETRIEVAL_METHODS as readonly string[]).includes(m)) throw new UserError(`--method must be among ${RETRIEVAL_METHODS.join(', ')}, got "${m}"`);
  const candidates = positiveInt('candidates', o.candidates) ?? 8;
  const count = positiveInt('count', o.count) ?? 20;
  const perImage = positiveInt('per-image', o.perImage) ?? 2;
  const distractors = o.distractors ?? 'other';
  if (distractors !== 'other' && distractors !== 'same') throw new UserError(`--distractors must be other or same, got "${distractors}"`);
  if (count < 1 || perImage < 1) throw new UserError('--count and --per-image must be at least 1');
  if (o.looks !== undefined && o.tokens !== undefined) throw new UserError('give --looks or --tokens, not both');
  const looks = positiveInt('looks', o.looks);
  const tokens = positiveInt('tokens', o.tokens);
  // the model is loaded with --seed as its random seed only for --preset; data seeds are separate
  const model = await modelFrom({ ...(o.model ? { model: o.model } : {}), ...(o.preset ? { preset: o.preset } : {}) }, 'all');
  const tok = await evalTokenizer(model, model.folder);
  if (tok.source !== model.folder) process.stderr.write(`ps3: warning: ${o.model ?? model.source} has no tokenizer.json; using the synthetic captions' word tokenizer\n`);
  const cfg = model.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const imagesNeeded = Math.ceil(count / perImage) + 1;
  let images: RetrievalImage[];
  let source: Record<string, unknown>;
  if (o.data) {
    const read = await shardRetrievalImages(o.data, imagesNeeded, S);
    images = read.images;
    source = { data: path.resolve(o.data), seed: read.seed };
    if (read.seed !== null && read.seed < HELDOUT_SEED_BASE) process.stderr.write(`ps3: warning: ${o.data} was made with seed ${read.seed}, in the training range; this is not held-out data\n`);
  } else {
    const seed = seedGiven ?? HELDOUT_SEED_BASE;
    const size = positiveInt('size', o.size) ?? S;
    images = synthRetrievalImages(seed, imagesNeeded, size, S, o.force ?? false);
    source = { synth: true, seed, size };
  }
  const tasks = retrievalTasks(images, { count, candidates, perImage, seed: 0, distractors });
  process.stderr.write(`eval retrieval: ${tasks.length} triples from ${images.length} images, ${candidates} candidates (chance ${(100 / candidates).toFixed(1)}%); model ${model.source}\n`);
  const reports: RetrievalReport[] = [];
  for (const method of methods as RetrievalMethod[]) {
    if (reports.some((r) => r.aborted)) {
      process.stderr.write(`${method}: not run (the engine stopped after running out of memory)\n`);
      continue;
    }
    const bar = progressBar(tasks.length, method, 'top-1 {acc}');
    const report = await evaluateRetrieval(model, tok.tokenizer, images, tasks, {
      method,
      ...(looks !== undefined ? { looks } : {}),
      ...(tokens !== undefined ? { tokens } : {}),
      onProgress: (done, _t, correct) => bar.update(done, { acc: `${((100 * correct) / done).toFixed(1)}%` }),
    });
    bar.stop();
    reports.push(report);
  }
  process.stdout.write(`${formatRetrievalTable(reports)}\n`);
  if (o.out) {
    fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
    fs.writeFileSync(o.out, `${JSON.stringify({ model: model.source, tokenizer: tok.source, ...source, candidates, distractors, triples: tasks.length, reports }, null, 2)}\n`);
    process.stderr.write(`wrote ${o.out}\n`);
  }
  return 0;
}
