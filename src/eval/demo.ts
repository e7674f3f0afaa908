/**
 * The main job end to end, on embedded defaults: the shipped VILA-HD (`models/vila-hd-tiny`, on
 * `models/ps3-tiny`) answers a fresh held-out 4KPro-lite with PS3 and with the baselines it
 * holds LMs for, with the two scaling curves and a picture of where it looked (demoVila.ts) ->
 * the shipped PS3 (or, with a preset instead, that shape pre-trained here from random weights
 * first): where it looks on held-out scenes (selection recall against random) -> local retrieval
 * for PS3 against low-res -> cost versus resolution -> the bundled 4K sample encoded bottom-up and
 * top-down -> a short fine-tuning run from the shipped model on fresh synthetic 4K data (the
 * trainer at work) -> `report.md`, `report.json` and pictures, with the time of every stage.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../tensor/engine.js';
import { loadPixelValues, toPng } from '../io/image.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { writeSynthDataset } from '../data/synth.js';
import { synthVocabulary, writeWordTokenizer } from '../data/wordTokenizer.js';
import { encodeImage } from '../model/encoder.js';
import { loadModel, type PS3Model } from '../model/load.js';
import { presetConfig } from '../model/presets.js';
import { disposeEncode } from '../model/region.js';
import { UserError } from '../errors.js';
import { encodeText } from '../model/text.js';
import { runTraining, type TrainRunOptions } from '../train/run.js';
import { evaluateRetrieval, retrievalTasks, synthRetrievalImages, type RetrievalReport } from './retrieval.js';
import { costReport, writeCostPlots, type CostReport } from './cost.js';
import { evaluateSelection, examplesPicture, type SelectionRecallReport } from './selectionRecall.js';
import { writeSelectionPictures } from './selectionPictures.js';
import { disposeVilaHd, loadVilaHd } from '../mllm/model.js';
import { runVilaDemo, stageClock, type VilaDemoResult } from './demoVila.js';

export interface DemoOptions {
  readonly out: string;
  /** the trained PS3 model folder every evaluation uses, and the fine-tuning starts from */
  readonly model?: string;
  /** instead of a model: this shape pre-trained here from random weights (`micro` is a fast check) */
  readonly preset?: string;
  /** the VILA-HD folder that answers the 4KPro-lite questions (its PS3 is the one its config names) */
  readonly vila: string;
  /** small budgets: a check that everything runs, not a result */
  readonly quick: boolean;
  /** the command line that asked for this run, as the report records it */
  readonly command: string;
  /** held-out scenes of the selection-recall check */
  readonly selectionScenes: number;
  readonly sampleImage: string;
  readonly prompt: string;
  readonly trainImages: number;
  readonly trainMinutes: number;
  readonly batch: number;
  /** held-out 4KPro-lite questions VILA-HD answers with ps3 and lowres */
  readonly questions: number;
  /** questions the slow baselines (anyres, s2) answer: the first ones */
  readonly slowQuestions: number;
  /** questions each point of the scaling curves answers: the first ones */
  readonly scalingQuestions: number;
  /** the test-time curve's looks */
  readonly looks: readonly number[];
  /** anyres and s2: the resolution they tile (default: each its LM's training resolution) */
  readonly baselineResolution?: number;
  readonly retrievalTriples: number;
  readonly candidates: number;
  readonly costResolutions: readonly number[];
  readonly seed: number;
}

/**
 * Budgets sized for about 7 minutes on 2 shared cores: 100 questions make a 95 % interval of a
 * difference between two methods about +-0.13, so a 0.15 difference is not noise.
 */
export const DEFAULT_DEMO: Omit<DemoOptions, 'out' | 'sampleImage' | 'model' | 'preset' | 'command' | 'vila' | 'baselineResolution'> = {
  quick: false,
  prompt: 'a small red sign',
  trainImages: 6,
  trainMinutes: 0.75,
  batch: 2,
  questions: 100,
  slowQuestions: 16,
  scalingQuestions: 16,
  looks: [1, 2, 3],
  retrievalTriples: 4,
  selectionScenes: 3,
  candidates: 4,
  // the two top scales where the methods part ways (at 756 every method costs about the same); each point is a fresh process
  costResolutions: [1512, 3780],
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
  /** the machine's 1-, 5- and 15-minute load averages when the run started and ended (other jobs slow every stage) */
  readonly load_average: { readonly start: number[]; readonly end: number[] };
  /** the whole run, start to report */
  readonly wall_seconds: number;
  /** per section: the weights its numbers come from */
  readonly weights: Record<'selection' | 'qa' | 'retrieval' | 'cost' | 'sample' | 'training', string>;
}

export interface DemoReport {
  readonly run: DemoRun;
  readonly model: string;
  readonly selection: { topdown: number | null; bottomup: number | null; random: number | null; regions: number; objects: number; scale: number; looks: number };
  /** held-out 4KPro-lite answered by VILA-HD, per method */
  readonly qa: VilaDemoResult['qa'];
  /** the VILA-HD part: model, benchmark, differences against lowres, the look picture */
  readonly vila: Omit<VilaDemoResult, 'qa' | 'scaling' | 'pictures' | 'seconds' | 'cpu_seconds'>;
  readonly scaling: VilaDemoResult['scaling'];
  readonly retrieval: Record<string, number | null>;
  readonly cost: Array<{ method: string; resolution: number; tokens: number; ms: number | null; status: string }>;
  readonly training: { from: string; steps: number; samples: number; seconds: number; first_loss: number | null; last_loss: number | null; samples_per_s: number | null; gflops: number | null };
  readonly chance: { qa: number | null; retrieval: number | null };
  readonly pictures: string[];
  /** wall seconds per stage (vila_* are parts of vila) */
  readonly seconds: Record<string, number>;
  /** CPU seconds of this process per stage (every thread; the cost stage's encodes run in child processes, not counted): what the stage costs whatever else the machine runs */
  readonly cpu_seconds: Record<string, number>;
}

export type DemoLog = (stage: string, message: string) => void;

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
  const started = performance.now();
  const loadStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const seconds: Record<string, number> = {};
  const cpuSeconds: Record<string, number> = {};
  const timed = async <T>(stage: string, f: () => Promise<T>): Promise<T> => {
    const clock = stageClock();
    const r = await f();
    const t = clock();
    seconds[stage] = t.wall;
    cpuSeconds[stage] = t.cpu;
    log(stage, `done in ${t.wall} s (${t.cpu} CPU s)`);
    return r;
  };
  const reused = fs.existsSync(o.out) && fs.readdirSync(o.out).length > 0;
  fs.mkdirSync(o.out, { recursive: true });
  if ((o.model === undefined) === (o.preset === undefined)) throw new UserError('the demo takes a trained model folder or a preset to pre-train, one of them');
  // every VILA-HD key and shape is checked before the first stage
  const vila = loadVilaHd(o.vila);
  const dataDir = path.join(o.out, 'data');
  const trainDir = path.join(o.out, 'train');
  const metrics: Array<{ step: number; loss: number; samples_per_s: number; gflops: number }> = [];
  // the training scenes: drawn at 4K; a smaller model squashes them to its top scale, so their details still need more than its low-res view
  const synthesise = async (top: number): Promise<void> => {
    const size = Math.max(top, 1512);
    await timed('data', async () => {
      fs.rmSync(dataDir, { recursive: true, force: true });
      log('data', `synthesising ${o.trainImages} training scenes at ${size} px`);
      await writeSynthDataset({ out: dataDir, count: o.trainImages, width: size, height: size, seed: o.seed, perShard: 16, format: 'png' }, (p) => log('data', `${p.done}/${o.trainImages} images`));
      await writeWordTokenizer(path.join(dataDir, 'tokenizer'), synthVocabulary(), { contextLength: 64 });
    });
  };
  const train = async (start: Pick<TrainRunOptions, 'preset' | 'init'>, what: string, tuning: Partial<TrainRunOptions>): Promise<void> => {
    await timed('train', async () => {
      fs.rmSync(trainDir, { recursive: true, force: true });
      const options: TrainRunOptions = {
        ...start, data: dataDir, out: trainDir, resume: false, steps: 10_000, batch: o.batch, accum: 1, lr: 1e-3, warmup: 5, clip: 1,
        freeze: 'none', adamw: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 3e-4 }, lossWeights: { contrastive: 1, priorBox: 1, posteriorBox: 1 },
        seed: o.seed, saveEvery: 1_000_000, maxSeconds: o.trainMinutes * 60, shuffleBuffer: 32, globalCaptionProb: 0.25, ...tuning,
      };
      log('train', `${what} for ${o.trainMinutes} min, batch ${o.batch}`);
      await runTraining(options, {
        onStep: (m) => {
          metrics.push(m);
          log('train', `step ${m.step} loss ${m.loss.toFixed(4)} (${m.samples_per_s.toFixed(2)} samples/s)`);
        },
      });
    });
  };
  let modelDir: string;
  let weightsLabel: string;
  let vilaResult: VilaDemoResult;
  try {
    if (o.preset !== undefined) {
      const top = presetConfig(o.preset).vision.scales.at(-1)!;
      await synthesise(top);
      await train({ preset: o.preset }, `pre-training the ${o.preset} preset`, {});
      modelDir = path.join(trainDir, 'checkpoint');
      weightsLabel = `${o.preset}, trained here for ${o.trainMinutes} min from random weights`;
    } else {
      modelDir = o.model!;
      weightsLabel = `${o.model}, the trained model (not this run's fine-tuning)`;
    }
    vilaResult = await timed('vila', () =>
      runVilaDemo(vila, { out: o.out, seed: o.seed, questions: o.questions, slowQuestions: o.slowQuestions, scalingQuestions: o.scalingQuestions, looks: o.looks, ...(o.baselineResolution !== undefined ? { baselineResolution: o.baselineResolution } : {}) }, log),
    );
  } finally {
    disposeVilaHd(vila);
  }
  Object.assign(seconds, vilaResult.seconds);
  Object.assign(cpuSeconds, vilaResult.cpu_seconds);
  const pictures: string[] = [...vilaResult.pictures];

  const model = loadModel(modelDir);
  const tokenizer = await loadTokenizer(modelDir, { contextLength: model.config.text.contextLength, clean: model.config.text.tokenizerClean, padId: model.config.text.padId });
  const S = model.config.vision.scales[model.config.vision.scales.length - 1]!;
  // held-out scenes are drawn at 4K, or 1512 at least: a smaller model squashes them to its top scale
  const sceneSize = Math.max(S, 1512);

  let selection: SelectionRecallReport | undefined;
  await timed('selection', async () => {
    log('selection', `where ${modelDir} looks on ${o.selectionScenes} held-out scenes at ${S} px (top-down with each region's caption, bottom-up, random)`);
    const images = synthRetrievalImages(HELDOUT_SEED_BASE + o.seed + 3, o.selectionScenes, sceneSize, S);
    const { report, examples } = await evaluateSelection(model, tokenizer, images, { looks: 1, examples: 4 });
    selection = report;
    const file = path.join(o.out, 'selection-examples.png');
    fs.writeFileSync(file, await toPng(examplesPicture(examples, model.config.vision.trunk.patchSize, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])));
    pictures.push(file);
  });

  const retrievalReports: RetrievalReport[] = [];
  await timed('retrieval', async () => {
    const images = synthRetrievalImages(HELDOUT_SEED_BASE + o.seed + 2, Math.max(3, Math.ceil(o.retrievalTriples / 2)), sceneSize, S);
    const tasks = retrievalTasks(images, { count: o.retrievalTriples, candidates: o.candidates, seed: o.seed });
    for (const method of ['ps3', 'lowres'] as const) {
      log('retrieval', `${method} on ${tasks.length} held-out (image, box, caption) triples, ${o.candidates} candidates`);
      retrievalReports.push(await evaluateRetrieval(model, tokenizer, images, tasks, { method, looks: 1 }));
    }
  });

  // time and tokens do not depend on the weights' values: the cost runs use random weights of the same shapes
  const costWeights = 'random weights, the trained model\'s shapes';
  let cost: CostReport | undefined;
  await timed('cost', async () => {
    log('cost', `encode time and tokens at ${o.costResolutions.join(', ')} px`);
    cost = await costReport({ config: model.config, model: costWeights, resolutions: o.costResolutions, looks: 1, seed: o.seed, isolate: true, timeoutS: 60 });
    pictures.push(...(await writeCostPlots(cost, o.out)));
  });

  await timed('sample', async () => {
    log('sample', `encoding ${o.sampleImage} bottom-up and top-down ("${o.prompt}")`);
    pictures.push(...(await sampleHeatmaps(model, tokenizer, o.sampleImage, o.prompt, o.out)));
  });

  if (o.model !== undefined) {
    await synthesise(S);
    // the shipped model's last stage, continued: text tower frozen, every loss on, a small learning rate
    await train({ init: o.model }, `fine-tuning ${o.model}`, { lr: 1e-4, warmup: 2, freeze: 'text', globalCaptionProb: 0.1 });
  }

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
      load_average: { start: loadStart, end: os.loadavg().map((x) => Math.round(x * 100) / 100) },
      wall_seconds: Math.round((performance.now() - started) / 100) / 10,
      weights: {
        selection: weightsLabel, retrieval: weightsLabel, sample: weightsLabel,
        qa: `${o.vila} (VILA-HD: one LM per method) on its own PS3 ${vilaResult.ps3_model}`,
        cost: `${costWeights}: time and tokens do not depend on the weights' values`,
        training: o.model !== undefined ? `fine-tuned from ${o.model} (its weights are not the ones evaluated)` : `pre-trained here from random weights (${o.preset})`,
      },
    },
    model: modelDir,
    selection: {
      topdown: round(selection?.topdown.recall ?? null), bottomup: round(selection?.bottomup.recall ?? null), random: round(selection?.random.recall ?? null),
      regions: selection?.topdown.cases ?? 0, objects: selection?.bottomup.cases ?? 0, scale: S, looks: 1,
    },
    qa: vilaResult.qa,
    vila: { model: vilaResult.model, ps3_model: vilaResult.ps3_model, benchmark: vilaResult.benchmark, differences: vilaResult.differences, image_control: vilaResult.image_control, look: vilaResult.look },
    scaling: vilaResult.scaling,
    retrieval: Object.fromEntries(retrievalReports.map((r) => [r.method, round(r.accuracy)])),
    cost: (cost?.rows ?? []).filter((r) => r.method !== 'pretrain').map((r) => ({ method: r.method, resolution: r.resolution, tokens: r.tokens, ms: round(r.ms, 1), status: r.status })),
    training: {
      from: o.model ?? `random weights (${o.preset})`,
      steps: metrics.length,
      samples: metrics.length * o.batch,
      seconds: seconds['train'] ?? 0,
      first_loss: round(metrics[0]?.loss ?? null, 4),
      last_loss: round(metrics.length ? metrics.slice(-5).reduce((a, m) => a + m.loss, 0) / Math.min(5, metrics.length) : null, 4),
      samples_per_s: round(metrics.length ? metrics.reduce((a, m) => a + m.samples_per_s, 0) / metrics.length : null),
      gflops: round(metrics.length ? metrics.reduce((a, m) => a + m.gflops, 0) / metrics.length : null, 2),
    },
    chance: { qa: vilaResult.benchmark.chance, retrieval: round(retrievalReports[0]?.chance ?? null) },
    pictures: pictures.map((p) => path.relative(o.out, p)),
    seconds,
    cpu_seconds: cpuSeconds,
  };
  fs.writeFileSync(path.join(o.out, 'report.json'), `${JSON.stringify({ ...report, pretrain_cost: (cost?.rows ?? []).filter((r) => r.method === 'pretrain') }, null, 2)}\n`);
  fs.writeFileSync(path.join(o.out, 'report.md'), reportMarkdown(report, o));
  return report;
}

function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined ? '—' : x.toFixed(digits);
}

const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(1)}%`);

function vilaMarkdown(r: DemoReport): string {
  const v = r.vila;
  const b = v.benchmark;
  const rows = Object.entries(r.qa).map(([m, q]) =>
    q.status === 'missing'
      ? `| ${m} | missing: ${q.reason ?? ''} | | | | | |`
      : `| ${m}${m === 'ps3' ? ' (1 look)' : q.settings?.['resolution'] ? ` (${String(q.settings['resolution'])} px)` : ''} | ${fmt(q.accuracy)} | ${q.interval95 ? `${fmt(q.interval95[0], 2)}–${fmt(q.interval95[1], 2)}` : '—'} | ${q.answered ?? 0}/${b.questions} | ${q.tokens ?? '—'} | ${fmt(q.ms_per_question, 0)} | ${q.status}${m === 'ps3' && q.evidence_recall !== undefined ? `; evidence recall of the first look ${pct(q.evidence_recall)} (random choice of as many patches ${pct(q.random_recall)})` : ''} |`,
  );
  const subset = Object.entries(r.qa).filter(([, q]) => q.answered !== undefined && q.answered < b.questions).map(([m, q]) => `${m} answered the first ${q.answered} questions only (it is slow: ${q.tokens ?? '?'} trunk tokens a question)`);
  const full = Object.values(r.qa).find((q) => q.answered === b.questions && q.accuracy !== null);
  const half = full && full.interval95 ? (full.interval95[1] - full.interval95[0]) / 2 : null;
  const fullDiff = Object.values(v.differences).find((d) => d.questions === b.questions);
  const noise = fullDiff ? (fullDiff.interval95[1] - fullDiff.interval95[0]) / 2 : null;
  const diffs = Object.entries(v.differences).map(([k, d]) => `- ${k.replace('-', ' − ')}: ${d.difference >= 0 ? '+' : ''}${fmt(d.difference)} (95 % interval ${fmt(d.interval95[0])} to ${fmt(d.interval95[1])}, ${d.questions} questions): ${d.beyond_noise ? 'beyond noise' : 'within noise'}`);
  const cats = Object.keys(b.per_category);
  const catRows = Object.entries(r.qa).filter(([, q]) => q.status !== 'missing').map(([m, q]) => `| ${m} | ${cats.map((c) => (q.per_category[c] ? `${fmt(q.per_category[c].accuracy, 2)} (${q.per_category[c].questions})` : '—')).join(' | ')} |`);
  const curve = (ps: DemoReport['scaling']['test_time'], what: string) => ps.map((p) => `| ${p.x}${what} | ${fmt(p.accuracy)} | ${p.tokens ?? '—'} | ${pct(p.recall)} | ${p.questions} |`).join('\n');
  const look = v.look;
  return `## Held-out 4KPro-lite answered by VILA-HD (${b.questions} questions on ${b.images} new scenes of ${b.size} px, seed ${b.seed}; chance ${fmt(b.chance)})

VILA-HD ${v.model} on its PS3 (${v.ps3_model}): one LM per method, the same shape, trained on that method's tokens.
The questions (${Object.entries(b.per_category).map(([c, n]) => `${c} ${n}`).join(', ')}) are new: \`ps3 eval make-4k\` with held-out seed ${b.seed}, in \`4kpro-lite/\`. Without the image, a reader of the options alone (the option of one fixed rank of closeness to the others, the best rank per category, chosen on these questions) answers ${fmt(b.options_only)}.
${subset.length ? `${subset.join('; ')}.\n` : ''}
| method | accuracy | 95 % interval (Wilson) | answered | trunk tokens / question | ms / question | status |
| --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

Per category (accuracy, and in brackets the questions answered):

| method | ${cats.join(' | ')} |
| --- | ${cats.map(() => '---').join(' | ')} |
${catRows.join('\n')}

${v.image_control.length ? `**Does the image matter?** The image-swap control (\`eval qa --other-image\`): ${v.image_control.map((c) => `the ${c.method} LM asked ${c.questions} questions of other scenes' images answers ${fmt(c.other_image)}, against ${fmt(c.own_image)} on their own images${c.own_image !== null && c.other_image !== null && c.own_image - c.other_image < 0.1 ? ' (what it gets right comes from the question and options, not the image)' : ''}`).join('; ')}.\n\n` : ''}**Is a difference noise?** ${half !== null ? `On ${b.questions} questions an accuracy's 95 % interval is about ±${fmt(half, 2)}. ` : ''}Each method against lowres on the questions both answered (Newcombe's 95 % interval of a difference of two proportions${noise !== null ? `; on all ${b.questions} questions its half-width is ${fmt(noise, 2)}, so ${noise <= 0.15 ? 'a 0.15 difference is not noise' : 'a 0.15 difference could still be noise: ask more questions (--questions)'}` : ''}):
${diffs.length ? diffs.join('\n') : '- (no lowres run to compare with)'}

### Scaling curves (ps3 LM, the first ${r.scaling.questions} questions; chance ${fmt(r.scaling.chance)})

Test-time scaling: accuracy against looks at the top scale.

| looks | accuracy | trunk tokens | evidence recall | questions |
| --- | --- | --- | --- | --- |
${curve(r.scaling.test_time, '')}

Resolution for free: accuracy against the top scale looked at, at ${r.scaling.budget} high-res tokens.

| top scale | accuracy | trunk tokens | evidence recall | questions |
| --- | --- | --- | --- | --- |
${curve(r.scaling.resolution, ' px')}

![test-time scaling](scaling-test-time.png) ![resolution for free](scaling-resolution.png) ![accuracy vs tokens](accuracy-vs-tokens.png)
${look ? `
### Where VILA-HD looked (the benchmark's first question)

"${look.question}" (options ${look.options.join(' / ')}): answered **${look.predicted}**, the answer is **${look.answer}**; ${look.trunk_tokens} trunk tokens; the first look chose ${pct(look.evidence_recall)} of the evidence box ${look.evidence_box ? `(${look.evidence_box.join(', ')} px)` : ''}. Heat map: the prompt head's top-down probabilities, chosen patches outlined.

${look.pictures.map((p) => `![where VILA-HD looked: ${p}](${p})`).join(' ')}
` : ''}`;
}

export function reportMarkdown(r: DemoReport, o: DemoOptions): string {
  const retrievalRows = Object.entries(r.retrieval).map(([m, a]) => `| ${m} | ${fmt(a)} |`);
  const resolutions = [...new Set(r.cost.map((c) => c.resolution))].sort((a, b) => a - b);
  const methods = [...new Set(r.cost.map((c) => c.method))];
  const costRows = methods.map((m) => `| ${m} | ${resolutions.map((res) => {
    const c = r.cost.find((x) => x.method === m && x.resolution === res);
    return c ? (c.ms === null ? c.status : `${c.ms.toFixed(0)} ms / ${c.tokens} tok`) : '—';
  }).join(' | ')} |`);
  const sel = r.selection;
  const run = r.run;
  const m = run.machine;
  return `# PS3 demo report${run.quick ? ' (quick: small budgets, a check that everything runs, not a result)' : ''}

Made by \`${run.command}\` on ${run.date} on ${m.cores} cores (${m.cpu}), ${m.memory_gib} GiB, ${m.platform}, Node ${m.node}:
${run.wall_seconds} s wall time; load average ${run.load_average.start.join(' / ')} at the start, ${run.load_average.end.join(' / ')} at the end (1 / 5 / 15 min; other jobs slow every stage).
${run.out_folder_reused ? 'The output folder already held files; data/, train/ and 4kpro-lite/ were rebuilt by this run, and every number below is from it.\n' : ''}
Question answering: ${run.weights.qa}. The PS3 sections use ${run.weights.selection}${fs.existsSync(path.join(r.model, 'TRAINING.md')) ? ` (${path.join(r.model, 'TRAINING.md')} says how it was made)` : ''}, on held-out
synthetic scenes (seeds from ${HELDOUT_SEED_BASE}); cost: ${run.weights.cost}; training: ${run.weights.training}.
The numbers are what this run measured.

Options: ${Object.entries(run.options).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : String(v)}`).join('; ')}.

| stage | ${Object.keys(r.seconds).join(' | ')} |
| --- | ${Object.keys(r.seconds).map(() => '---').join(' | ')} |
| wall seconds | ${Object.values(r.seconds).join(' | ')} |
| CPU seconds (this process) | ${Object.keys(r.seconds).map((k) => r.cpu_seconds[k] ?? '—').join(' | ')} |

${vilaMarkdown(r)}
## Where PS3 looks (${sel.regions} held-out regions, ${sel.objects} small objects; first look, top scale ${sel.scale} px)

| selection | recall of the box's top-scale patches |
| --- | --- |
| top-down (the region's caption as prompt) | ${fmt(sel.topdown)} |
| bottom-up (learned prior prompt), every small object | ${fmt(sel.bottomup)} |
| random choice of the same number of patches | ${fmt(sel.random)} |

## Local retrieval (the true caption among ${o.candidates}, distractors from other images; chance ${fmt(r.chance.retrieval)})

| method | top-1 accuracy |
| --- | --- |
${retrievalRows.join('\n')}

## Cost versus resolution (one image; PS3 at one look; random weights of the same shapes)

| method | ${resolutions.map((x) => `${x} px`).join(' | ')} |
| --- | ${resolutions.map(() => '---').join(' | ')} |
${costRows.join('\n')}

## Training (${run.weights.training})

${r.training.steps} steps, ${r.training.samples} samples in ${r.training.seconds} s (${fmt(r.training.samples_per_s, 2)} samples/s,
about ${fmt(r.training.gflops, 1)} GFLOP/s) from ${r.training.from}; loss ${fmt(r.training.first_loss, 3)} at the first step, ${fmt(r.training.last_loss, 3)} over the last five.

## Pictures

${r.pictures.map((p) => `- ![${p}](${p})`).join('\n')}
`;
}
