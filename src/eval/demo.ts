/**
 * The main job end to end, on embedded defaults: synthetic 4K data -> pre-train the `tiny`
 * preset -> 4KPro-lite question answering and local retrieval for PS3 against low-res, AnyRes
 * and S² on the same weights -> cost versus resolution -> the bundled 4K sample encoded
 * bottom-up and top-down -> `report.md`, `report.json` and pictures.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../tensor/engine.js';
import { loadPixelValues } from '../io/image.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { writeSynthDataset } from '../data/synth.js';
import { synthVocabulary, writeWordTokenizer } from '../data/wordTokenizer.js';
import { encodeImage } from '../model/encoder.js';
import { loadModel, type PS3Model } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import { encodeText } from '../model/text.js';
import { runTraining, type TrainRunOptions } from '../train/run.js';
import { HELDOUT_SEED_BASE, makeBenchmark } from './qa/generate.js';
import { loadBenchmark } from './qa/format.js';
import { evaluateQa, type QaReport } from './qa/evaluate.js';
import { evaluateRetrieval, retrievalTasks, synthRetrievalImages, type RetrievalReport } from './retrieval.js';
import { costReport, writeCostPlots, type CostReport } from './cost.js';
import { renderPlot } from './plot.js';
import { disposeEncode } from './region.js';
import { writeSelectionPictures } from './selectionPictures.js';
import type { EncodeMethod } from './baselines.js';

export interface DemoOptions {
  readonly out: string;
  /** the shape pre-trained from random weights: `tiny` (the demo) or `micro` (a fast check) */
  readonly preset: string;
  /** small budgets: a check that everything runs, not a result */
  readonly quick: boolean;
  /** the command line that asked for this run, as the report records it */
  readonly command: string;
  readonly sampleImage: string;
  readonly prompt: string;
  readonly trainImages: number;
  readonly trainMinutes: number;
  readonly batch: number;
  readonly questions: number;
  readonly retrievalTriples: number;
  readonly candidates: number;
  readonly costResolutions: readonly number[];
  readonly seed: number;
}

export const DEFAULT_DEMO: Omit<DemoOptions, 'out' | 'sampleImage' | 'command'> = {
  preset: 'tiny',
  quick: false,
  prompt: 'a red stop sign',
  trainImages: 48,
  trainMinutes: 3,
  batch: 3,
  questions: 8,
  retrievalTriples: 8,
  candidates: 8,
  costResolutions: [756, 1512, 3780, 7560],
  seed: 0,
};

/** Where and how a report was made: it says what ran, not what a default run would have. */
export interface DemoRun {
  readonly command: string;
  readonly options: Record<string, unknown>;
  readonly quick: boolean;
  readonly date: string;
  readonly machine: { readonly cores: number; readonly cpu: string; readonly memory_gib: number; readonly platform: string; readonly node: string };
  /** whether the output folder held files before this run (data/, train/ and 4kpro-lite/ are always rebuilt) */
  readonly out_folder_reused: boolean;
  /** per section: the weights its numbers come from */
  readonly weights: Record<'qa' | 'retrieval' | 'cost' | 'sample', string>;
}

export interface DemoReport {
  readonly run: DemoRun;
  readonly qa: Record<string, { accuracy: number | null; tokens: number | null; ms_per_question: number | null; status: string; per_category: Record<string, { accuracy: number | null; questions: number }> }>;
  readonly retrieval: Record<string, number | null>;
  readonly cost: Array<{ method: string; resolution: number; tokens: number; ms: number | null; status: string }>;
  readonly training: { steps: number; samples: number; seconds: number; first_loss: number | null; last_loss: number | null; samples_per_s: number | null; gflops: number | null };
  readonly chance: { qa: number | null; retrieval: number | null };
  readonly pictures: string[];
  readonly seconds: Record<string, number>;
}

export type DemoLog = (stage: string, message: string) => void;

const METHODS: readonly EncodeMethod[] = ['ps3', 'lowres', 'anyres', 's2'];

async function sampleHeatmaps(model: PS3Model, tokenizer: TextTokenizer, image: string, prompt: string, out: string): Promise<string[]> {
  const cfg = model.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const pv = await loadPixelValues(image, { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  const pixels = { data: pv.pixels, batch: 1, height: S, width: S };
  const text = encodeText(model.weights, model.config.text, tokenizer.encode([prompt]), 1);
  const encoded = await encodeImage(model.weights, model.config, pixels, { prompt: text.prompt, numLookClose: 1, outputHiddenStates: false });
  const style = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], aspect: pv.originalWidth / pv.originalHeight };
  const files = [
    ...(await writeSelectionPictures(out, pixels, encoded, cfg.scales, 'bottomup', { ...style, prefix: 'sample-bottomup' })),
    ...(await writeSelectionPictures(out, pixels, encoded, cfg.scales, 'topdown', { ...style, prefix: 'sample-topdown' })),
  ];
  disposeEncode(encoded);
  tf.dispose([text.prompt, text.pooledOutput]);
  return files;
}

function round(x: number | null, digits = 3): number | null {
  return x === null || !Number.isFinite(x) ? null : Math.round(x * 10 ** digits) / 10 ** digits;
}

export async function runDemo(o: DemoOptions, log: DemoLog): Promise<DemoReport> {
  const seconds: Record<string, number> = {};
  const timed = async <T>(stage: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await f();
    seconds[stage] = Math.round((performance.now() - t0) / 100) / 10;
    log(stage, `done in ${seconds[stage]} s`);
    return r;
  };
  const reused = fs.existsSync(o.out) && fs.readdirSync(o.out).length > 0;
  fs.mkdirSync(o.out, { recursive: true });
  const preset = presetConfig(o.preset);
  const topScale = preset.vision.scales[preset.vision.scales.length - 1]!;
  const dataDir = path.join(o.out, 'data');
  const trainDir = path.join(o.out, 'train');
  // scenes are drawn at 4K for the tiny preset; a smaller preset still gets scenes whose details
  // need more than its low-res view (the model squashes them to its top scale)
  const S = Math.max(topScale, 1512);

  await timed('data', async () => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    log('data', `synthesising ${o.trainImages} training scenes at ${S} px`);
    await writeSynthDataset({ out: dataDir, count: o.trainImages, width: S, height: S, seed: o.seed, perShard: 16, format: 'png' }, (p) => log('data', `${p.done}/${o.trainImages} images`));
    await writeWordTokenizer(path.join(dataDir, 'tokenizer'), synthVocabulary(), { contextLength: 64 });
  });

  const metrics: Array<{ step: number; loss: number; samples_per_s: number; gflops: number }> = [];
  await timed('train', async () => {
    fs.rmSync(trainDir, { recursive: true, force: true });
    const train: TrainRunOptions = {
      preset: o.preset, data: dataDir, out: trainDir, resume: false, steps: 10_000, batch: o.batch, accum: 1, lr: 1e-3, warmup: 5, clip: 1,
      freeze: 'none', adamw: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 3e-4 }, lossWeights: { contrastive: 1, priorBox: 1, posteriorBox: 1 },
      seed: o.seed, saveEvery: 1_000_000, maxSeconds: o.trainMinutes * 60, shuffleBuffer: 32, globalCaptionProb: 0.25,
    };
    log('train', `pre-training the ${o.preset} preset for ${o.trainMinutes} min, batch ${o.batch}`);
    await runTraining(train, {
      onStep: (m) => {
        metrics.push(m);
        log('train', `step ${m.step} loss ${m.loss.toFixed(4)} (${m.samples_per_s.toFixed(2)} samples/s)`);
      },
    });
  });

  const model = loadModel(path.join(trainDir, 'checkpoint'));
  const tokenizer = await loadTokenizer(path.join(trainDir, 'checkpoint'), { contextLength: model.config.text.contextLength, clean: model.config.text.tokenizerClean, padId: model.config.text.padId });

  const benchDir = path.join(o.out, '4kpro-lite');
  const qaReports: QaReport[] = [];
  await timed('qa', async () => {
    fs.rmSync(benchDir, { recursive: true, force: true });
    const summary = await makeBenchmark({ out: benchDir, count: o.questions, size: S, seed: HELDOUT_SEED_BASE + o.seed + 1 });
    const items = loadBenchmark(summary.file);
    for (const method of METHODS) {
      log('qa', `${method} on ${items.length} 4KPro-lite questions`);
      qaReports.push(await evaluateQa(model, tokenizer, items, { method, looks: 1 }));
    }
  });

  const retrievalReports: RetrievalReport[] = [];
  await timed('retrieval', async () => {
    const images = synthRetrievalImages(HELDOUT_SEED_BASE + o.seed + 2, Math.max(2, Math.ceil(o.retrievalTriples / 2)), S, S);
    const tasks = retrievalTasks(images, { count: o.retrievalTriples, candidates: o.candidates, seed: o.seed });
    for (const method of ['ps3', 'lowres'] as const) {
      log('retrieval', `${method} on ${tasks.length} held-out (image, box, caption) triples, ${o.candidates} candidates`);
      retrievalReports.push(await evaluateRetrieval(model, tokenizer, images, tasks, { method, looks: 1 }));
    }
  });

  const trained = `${o.preset}, trained here for ${o.trainMinutes} min from random weights`;
  const costWeights = `${o.preset} (random weights, the trained model's shapes)`;
  let cost: CostReport | undefined;
  const pictures: string[] = [];
  await timed('cost', async () => {
    log('cost', `encode time and tokens at ${o.costResolutions.join(', ')} px`);
    cost = await costReport({ config: model.config, model: costWeights, resolutions: o.costResolutions, looks: 1, seed: o.seed, isolate: true, timeoutS: 60 });
    pictures.push(...(await writeCostPlots(cost, o.out)));
  });

  await timed('sample', async () => {
    log('sample', `encoding ${o.sampleImage} bottom-up and top-down ("${o.prompt}")`);
    pictures.push(...(await sampleHeatmaps(model, tokenizer, o.sampleImage, o.prompt, o.out)));
  });

  const accuracyPlot = path.join(o.out, 'accuracy-vs-tokens.png');
  await renderPlot(
    {
      title: '4KPro-lite: accuracy vs tokens (same trunk and weights)',
      xLabel: 'tokens through the trunk per question',
      yLabel: 'accuracy',
      logX: true,
      kind: 'scatter',
      yDomain: [0, 1],
      ...(qaReports[0] ? { hlines: [{ y: qaReports[0].chance, label: 'chance' }] } : {}),
      series: qaReports
        .filter((r) => r.accuracy !== null && r.tokens_median !== null)
        .map((r) => ({ name: r.method, points: [{ x: r.tokens_median!, y: r.accuracy! }] })),
    },
    accuracyPlot,
  );
  pictures.push(accuracyPlot);
  model.weights.dispose();

  const cpus = os.cpus();
  const report: DemoReport = {
    run: {
      command: o.command,
      options: Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'command')),
      quick: o.quick,
      date: new Date().toISOString(),
      machine: { cores: cpus.length, cpu: cpus[0]?.model.trim() ?? 'unknown', memory_gib: Math.round(os.totalmem() / 1024 ** 3), platform: `${os.platform()} ${os.arch()}`, node: process.version },
      out_folder_reused: reused,
      weights: { qa: trained, retrieval: trained, cost: `${costWeights}: time and tokens do not depend on the weights' values`, sample: trained },
    },
    qa: Object.fromEntries(
      qaReports.map((r) => [
        r.method,
        {
          accuracy: round(r.accuracy),
          tokens: r.tokens_median,
          ms_per_question: round(r.ms_per_question_median, 1),
          status: r.status,
          per_category: Object.fromEntries(Object.entries(r.per_category).map(([k, c]) => [k, { accuracy: round(c.accuracy), questions: c.questions }])),
        },
      ]),
    ),
    retrieval: Object.fromEntries(retrievalReports.map((r) => [r.method, round(r.accuracy)])),
    cost: (cost?.rows ?? []).filter((r) => r.method !== 'pretrain').map((r) => ({ method: r.method, resolution: r.resolution, tokens: r.tokens, ms: round(r.ms, 1), status: r.status })),
    training: {
      steps: metrics.length,
      samples: metrics.length * o.batch,
      seconds: seconds['train'] ?? 0,
      first_loss: round(metrics[0]?.loss ?? null, 4),
      last_loss: round(metrics.length ? metrics.slice(-5).reduce((a, m) => a + m.loss, 0) / Math.min(5, metrics.length) : null, 4),
      samples_per_s: round(metrics.length ? metrics.reduce((a, m) => a + m.samples_per_s, 0) / metrics.length : null),
      gflops: round(metrics.length ? metrics.reduce((a, m) => a + m.gflops, 0) / metrics.length : null, 2),
    },
    chance: { qa: round(qaReports[0]?.chance ?? null), retrieval: round(retrievalReports[0]?.chance ?? null) },
    pictures: pictures.map((p) => path.relative(o.out, p)),
    seconds,
  };
  fs.writeFileSync(path.join(o.out, 'report.json'), `${JSON.stringify({ ...report, pretrain_cost: (cost?.rows ?? []).filter((r) => r.method === 'pretrain') }, null, 2)}\n`);
  fs.writeFileSync(path.join(o.out, 'report.md'), reportMarkdown(report, o));
  return report;
}

function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined ? '—' : x.toFixed(digits);
}

export function reportMarkdown(r: DemoReport, o: DemoOptions): string {
  const qaRows = Object.entries(r.qa).map(([m, q]) => `| ${m} | ${fmt(q.accuracy)} | ${q.tokens ?? '—'} | ${fmt(q.ms_per_question, 0)} | ${q.status} |`);
  const retrievalRows = Object.entries(r.retrieval).map(([m, a]) => `| ${m} | ${fmt(a)} |`);
  const resolutions = [...new Set(r.cost.map((c) => c.resolution))].sort((a, b) => a - b);
  const methods = [...new Set(r.cost.map((c) => c.method))];
  const costRows = methods.map((m) => `| ${m} | ${resolutions.map((res) => {
    const c = r.cost.find((x) => x.method === m && x.resolution === res);
    return c ? (c.ms === null ? c.status : `${c.ms.toFixed(0)} ms / ${c.tokens} tok`) : '—';
  }).join(' | ')} |`);
  const run = r.run;
  const m = run.machine;
  return `# PS3 demo report${run.quick ? ' (quick: small budgets, a check that everything runs, not a result)' : ''}

Made by \`${run.command}\` on ${run.date} on ${m.cores} cores (${m.cpu}), ${m.memory_gib} GiB, ${m.platform}, Node ${m.node}.
${run.out_folder_reused ? `The output folder already held files; data/, train/ and 4kpro-lite/ were rebuilt by this run, and every number below is from it.\n` : ''}
What ran: synthetic data (seed ${o.seed}), a \`${o.preset}\` PS3 pre-trained from random weights for ${o.trainMinutes} minutes
(batch ${o.batch}, ${o.trainImages} scenes), evaluations on held-out synthetic scenes (${o.questions} questions, ${o.retrievalTriples} retrieval
triples). The numbers are what this run measured; read them with the training budget in mind.

Weights per section: 4KPro-lite and retrieval and the sample heat maps: ${run.weights.qa}; cost: ${run.weights.cost}.

Options: ${Object.entries(run.options).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : String(v)}`).join('; ')}.

## Training

${r.training.steps} steps, ${r.training.samples} samples in ${r.training.seconds} s (${fmt(r.training.samples_per_s, 2)} samples/s,
about ${fmt(r.training.gflops, 1)} GFLOP/s); loss ${fmt(r.training.first_loss, 3)} at the first step, ${fmt(r.training.last_loss, 3)} over the last five.

## 4KPro-lite (multiple choice, encoder alone; chance ${fmt(r.chance.qa)})

| method | accuracy | tokens / question | ms / question | status |
| --- | --- | --- | --- | --- |
${qaRows.join('\n')}

## Local retrieval (true caption among ${o.candidates}; chance ${fmt(r.chance.retrieval)})

| method | top-1 accuracy |
| --- | --- |
${retrievalRows.join('\n')}

## Cost versus resolution (one image; PS3 at one look; random weights of the same shapes)

| method | ${resolutions.map((x) => `${x} px`).join(' | ')} |
| --- | ${resolutions.map(() => '---').join(' | ')} |
${costRows.join('\n')}

## Pictures

${r.pictures.map((p) => `- ![${p}](${p})`).join('\n')}

Stage times (s): ${Object.entries(r.seconds).map(([k, v]) => `${k} ${v}`).join(', ')}.
`;
}
