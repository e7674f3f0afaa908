/**
 * The main job's VILA-HD part: a fresh held-out 4KPro-lite (`ps3 eval make-4k` with held-out
 * seeds) answered by the shipped VILA-HD with PS3 and with every baseline its folder holds an LM
 * for (a slow baseline answers the first questions only), the two scaling curves of
 * `ps3 eval scaling` on the first questions, and pictures of where VILA-HD looked for one
 * question. Every image is decoded once for all of it (evaluateVilaRuns).
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadPixelValues } from '../io/image.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { baseBudgets } from '../model/selection.js';
import { ENCODE_METHODS, type EncodeMethod } from '../model/baselines.js';
import { answerQuestion } from '../mllm/answer.js';
import type { VilaHd } from '../mllm/model.js';
import { makeBenchmark } from './qa/make4k.js';
import { loadBenchmark, type BenchItem } from './qa/format.js';
import { roundedOptionsOnly } from './qa/optionsOnly.js';
import { accuracyOf, curvesFrom, evaluateVilaRuns, evidenceRecall, plotScaling, scalingRuns, type ScalingCurves, type ScalingPlan, type VilaQaReport, type VilaRun } from './qa/vila.js';
import { writeLookPictures } from './lookPictures.js';
import { renderPlot } from './plot.js';
import { newcombeDifference, wilson } from './stats.js';

/** Methods that tile the image: slow, so they answer the first `slowQuestions` only. */
const SLOW: readonly EncodeMethod[] = ['anyres', 's2'];

export interface VilaDemoOptions {
  readonly out: string;
  readonly seed: number;
  /** held-out questions ps3 and lowres answer */
  readonly questions: number;
  /** questions the slow baselines (anyres, s2) answer: the first ones */
  readonly slowQuestions: number;
  /** questions each scaling point answers: the first ones */
  readonly scalingQuestions: number;
  /** test-time curve: looks at the top scale */
  readonly looks: readonly number[];
  /** anyres and s2: the resolution they tile (default: what their LMs were trained on) */
  readonly baselineResolution?: number;
}

export interface VilaMethodResult {
  readonly accuracy: number | null;
  readonly tokens: number | null;
  readonly ms_per_question: number | null;
  readonly status: string;
  readonly per_category: Record<string, { accuracy: number | null; questions: number }>;
  readonly questions?: number;
  readonly answered?: number;
  readonly correct?: number;
  /** 95 % Wilson interval of the accuracy */
  readonly interval95?: [number, number] | null;
  readonly lm_tokens?: number | null;
  readonly settings?: Record<string, unknown>;
  /** ps3: the fraction of each question's evidence box the first look chose, and a random choice of as many patches */
  readonly evidence_recall?: number | null;
  readonly random_recall?: number | null;
  /** why there is no result */
  readonly reason?: string;
}

export interface VilaLookPicture {
  readonly question: string;
  readonly options: string[];
  readonly answer: string;
  readonly predicted: string;
  readonly evidence_box: [number, number, number, number] | null;
  readonly evidence_recall: number | null;
  readonly trunk_tokens: number;
  readonly pictures: string[];
}

export interface ImageControl {
  readonly method: 'lowres' | 'ps3';
  readonly own_image: number | null;
  readonly other_image: number | null;
  readonly questions: number;
}

export interface VilaDemoResult {
  readonly model: string;
  readonly ps3_model: string;
  readonly benchmark: { folder: string; seed: number; questions: number; images: number; per_category: Record<string, number>; size: number; lowres: number; chance: number; options_only: number };
  readonly qa: Record<string, VilaMethodResult>;
  /** each method against lowres on the questions both answered: the difference and its 95 % Newcombe interval */
  readonly differences: Record<string, { difference: number; interval95: [number, number]; questions: number; beyond_noise: boolean }>;
  readonly scaling: ScalingCurves & { chance: number };
  /**
   * the image-swap control (eval qa --other-image): each LM's accuracy on the same questions asked
   * of their own images and of other scenes' images — the low-res LM on every question (it is
   * fast), the ps3 LM (one look) on the scaling curves' first questions; empty with one image
   */
  readonly image_control: ImageControl[];
  readonly look: VilaLookPicture | null;
  readonly pictures: string[];
  readonly seconds: Record<string, number>;
  readonly cpu_seconds: Record<string, number>;
}

/** Wall and CPU (this process, all threads) seconds of a stage: on a shared machine the two differ. */
export function stageClock(): () => { wall: number; cpu: number } {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  return () => {
    const c = process.cpuUsage(c0);
    return { wall: Math.round((performance.now() - t0) / 100) / 10, cpu: Math.round((c.user + c.system) / 1e5) / 10 };
  };
}

const r3 = (x: number | null): number | null => (x === null || !Number.isFinite(x) ? null : Math.round(x * 1000) / 1000);

function methodResult(r: VilaQaReport): VilaMethodResult {
  const correct = r.predictions.filter((p) => p.correct).length;
  const w = r.answered ? wilson(correct, r.answered) : null;
  return {
    accuracy: r3(r.accuracy),
    tokens: r.tokens_median,
    ms_per_question: r.ms_per_question_median === null ? null : Math.round(r.ms_per_question_median * 10) / 10,
    status: r.status === 'ok' ? 'ok' : `${r.status}: ${r.error ?? ''}`.trim(),
    per_category: Object.fromEntries(Object.entries(r.per_category).map(([k, c]) => [k, { accuracy: r3(c.accuracy), questions: c.questions }])),
    questions: r.questions,
    answered: r.answered,
    correct,
    interval95: w ? [r3(w.low)!, r3(w.high)!] : null,
    lm_tokens: r.lm_tokens_median,
    settings: Object.fromEntries(Object.entries(r.settings).filter(([k, v]) => v !== null && k !== 'hints')),
    ...(r.method === 'ps3' ? { evidence_recall: r3(r.evidence_recall_mean), random_recall: r3(r.random_recall_mean) } : {}),
  };
}

/** Compare each method with lowres on the questions both answered (a slow baseline's subset). */
function differences(reports: ReadonlyMap<EncodeMethod, VilaQaReport>): VilaDemoResult['differences'] {
  const base = reports.get('lowres');
  if (!base) return {};
  const out: VilaDemoResult['differences'] = {};
  for (const [method, r] of reports) {
    if (method === 'lowres' || r.answered === 0) continue;
    const ids = new Set(r.predictions.map((p) => p.id));
    const b = base.predictions.filter((p) => ids.has(p.id));
    const n = Math.min(b.length, r.answered);
    if (n === 0) continue;
    const k1 = r.predictions.filter((p) => p.correct).length;
    const k2 = b.filter((p) => p.correct).length;
    const d = newcombeDifference(k1, r.answered, k2, b.length);
    out[`${method}-lowres`] = { difference: r3(k1 / r.answered - k2 / b.length)!, interval95: [r3(d.low)!, r3(d.high)!], questions: n, beyond_noise: d.low > 0 || d.high < 0 };
  }
  return out;
}

/** The runs' first questions of the ps3 (one look) run, as a test-time point needs them. */
function firstAnswers(r: VilaQaReport, items: readonly BenchItem[], limit: number): VilaQaReport['predictions'] {
  const ids = new Set(items.slice(0, limit).map((i) => i.id));
  return r.predictions.filter((p) => ids.has(p.id));
}

async function lookPicture(model: VilaHd, item: BenchItem, out: string): Promise<VilaLookPicture> {
  const cfg = model.ps3.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const pv = await loadPixelValues(item.imagePath, { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  const a = await answerQuestion(model, 'ps3', { data: pv.pixels, batch: 1, height: S, width: S }, item.question, item.options, { looks: 1 });
  const pictures = a.selection ? await writeLookPictures(out, 'vila-look', pv.pixels, S, cfg.scales, a.selection) : [];
  const recall = a.selection ? evidenceRecall(item, a.selection.maps, model, S) : null;
  return {
    question: item.question, options: [...item.options], answer: item.options[item.answer]!, predicted: a.text,
    evidence_box: item.evidence ? [...item.evidence.box] : null, evidence_recall: recall ? r3(recall.recall) : null, trunk_tokens: a.trunkTokens, pictures: pictures.map((f) => path.relative(out, f)),
  };
}

export type VilaDemoLog = (stage: string, message: string) => void;

export async function runVilaDemo(model: VilaHd, o: VilaDemoOptions, log: VilaDemoLog): Promise<VilaDemoResult> {
  const seconds: Record<string, number> = {};
  const cpuSeconds: Record<string, number> = {};
  const record = (stage: string, clock: () => { wall: number; cpu: number }): void => {
    const t = clock();
    seconds[stage] = t.wall;
    cpuSeconds[stage] = t.cpu;
  };
  const cfg = model.ps3.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const lowres = cfg.scales[0]!;
  const benchClock = stageClock();
  const benchDir = path.join(o.out, '4kpro-lite');
  fs.rmSync(benchDir, { recursive: true, force: true });
  const seed = HELDOUT_SEED_BASE + o.seed + 1;
  log('vila', `a fresh held-out 4KPro-lite: ${o.questions} questions on scenes of ${S} px (seed ${seed})`);
  const summary = await makeBenchmark({ out: benchDir, count: o.questions, size: S, lowres, seed });
  const items = loadBenchmark(summary.file);
  record('vila_benchmark', benchClock);

  const answerClock = stageClock();
  const t1 = performance.now();
  const methods = ENCODE_METHODS.filter((m) => model.config.methods.includes(m));
  const qaRuns: VilaRun[] = methods.map((method) =>
    method === 'ps3' ? { method, looks: 1 } : SLOW.includes(method) ? { method, ...(o.baselineResolution !== undefined ? { resolution: o.baselineResolution } : {}), limit: o.slowQuestions } : { method },
  );
  const budget = baseBudgets(cfg).reduce((a, c) => a + c, 0);
  const plan: ScalingPlan = { looks: o.looks, budget, tops: cfg.scales.slice(2), limit: o.scalingQuestions };
  const curveRuns = model.config.methods.includes('ps3') ? scalingRuns(model, plan) : [];
  // one look on the first questions is the ps3 run's own answers to them: not asked again
  const reused = curveRuns.map((r) => r.looks === 1 && r.tokens === undefined);
  // the image-swap controls ride along (each image is decoded once for all runs): the low-res LM
  // on every question, the slower ps3 LM on the scaling questions, against its own answers to them
  const swappable = new Set(items.map((i) => i.imagePath)).size > 1;
  const control: Array<VilaRun & { method: ImageControl['method'] }> = swappable
    ? [...(methods.includes('lowres') ? [{ method: 'lowres' as const, otherImage: true }] : []), ...(methods.includes('ps3') ? [{ method: 'ps3' as const, looks: 1, otherImage: true, limit: o.scalingQuestions }] : [])]
    : [];
  const runs = [...qaRuns, ...curveRuns.filter((_, i) => !reused[i]), ...control];
  const total = runs.reduce((a, r) => a + Math.min(items.length, r.limit ?? items.length), 0);
  log('vila', `answering: ${qaRuns.map((r) => `${r.method} (${Math.min(items.length, r.limit ?? items.length)})`).join(', ')}; scaling curves on ${Math.min(items.length, o.scalingQuestions)} questions (looks ${o.looks.join(', ')}; top scales ${plan.tops.join(', ')} at ${budget} tokens)${control.length ? `; the image-swap control (${control.map((r) => `${r.method} on other scenes' images, ${Math.min(items.length, r.limit ?? items.length)}`).join('; ')})` : ''}; ${total} answers`);
  let done = 0;
  let lastLog = performance.now();
  const reports = await evaluateVilaRuns(model, items, runs, {
    onProgress: () => {
      done++;
      if (performance.now() - lastLog > 10_000 || done === total) {
        lastLog = performance.now();
        const rate = done / ((performance.now() - t1) / 1000);
        log('vila', `${done}/${total} answers (${rate.toFixed(2)}/s, ETA ${((total - done) / rate).toFixed(0)} s)`);
      }
    },
  });
  record('vila_answers', answerClock);
  const byMethod = new Map(methods.map((m, i) => [m, reports[i]!]));
  const qa: Record<string, VilaMethodResult> = {};
  for (const m of ENCODE_METHODS) {
    const r = byMethod.get(m);
    if (r) qa[m] = methodResult(r);
    else {
      qa[m] = {
        accuracy: null, tokens: null, ms_per_question: null, status: 'missing', per_category: {},
        reason: `${model.source} holds no ${m} LM (its config.json lists ${model.config.methods.join(', ')}${fs.existsSync(path.join(model.source, 'TRAINING.md')) ? `; ${path.join(model.source, 'TRAINING.md')} says why` : ''})`,
      };
    }
  }
  let curveReports = reports.slice(qaRuns.length);
  const answers = curveRuns.map((_, i) => {
    if (reused[i]) return firstAnswers(byMethod.get('ps3')!, items, o.scalingQuestions);
    const [r] = curveReports;
    curveReports = curveReports.slice(1);
    return r!.predictions;
  });
  const chance = items.reduce((a, i) => a + 1 / i.options.length, 0) / items.length;
  const pictures: string[] = [];
  const scaling = { ...(curveRuns.length ? curvesFrom(plan, answers, Math.min(items.length, o.scalingQuestions)) : { test_time: [], resolution: [], budget, questions: 0 }), chance };
  if (curveRuns.length) {
    const files = { testTime: path.join(o.out, 'scaling-test-time.png'), resolution: path.join(o.out, 'scaling-resolution.png') };
    await plotScaling(scaling, chance, files);
    pictures.push(files.testTime, files.resolution);
  }
  const accuracyPlot = path.join(o.out, 'accuracy-vs-tokens.png');
  await renderPlot(
    {
      title: `Held-out 4KPro-lite: VILA-HD accuracy vs tokens (${items.length} questions; slow baselines fewer)`,
      xLabel: 'tokens through the PS3 trunk per question', yLabel: 'accuracy', logX: true, kind: 'scatter', yDomain: [0, 1],
      hlines: [{ y: chance, label: 'chance' }],
      series: [...byMethod.values()].filter((r) => r.accuracy !== null && r.tokens_median !== null).map((r) => ({ name: `${r.method} (${r.answered} q)`, points: [{ x: r.tokens_median!, y: r.accuracy! }] })),
    },
    accuracyPlot,
  );
  pictures.push(accuracyPlot);

  const swapped = reports.slice(reports.length - control.length);
  const imageControl: ImageControl[] = control.map((run, i) => {
    const own = accuracyOf(firstAnswers(byMethod.get(run.method)!, items, run.limit ?? items.length));
    return { method: run.method, own_image: r3(own), other_image: r3(swapped[i]!.accuracy), questions: swapped[i]!.answered };
  });

  let look: VilaLookPicture | null = null;
  if (model.config.methods.includes('ps3')) {
    const lookClock = stageClock();
    const item = items[0]!;
    log('vila', `where VILA-HD looks for "${item.question}"`);
    look = await lookPicture(model, item, o.out);
    pictures.push(...look.pictures.map((f) => path.join(o.out, f)));
    record('vila_look', lookClock);
  }
  return {
    model: model.source,
    ps3_model: model.config.ps3Model,
    benchmark: { folder: benchDir, seed, questions: items.length, images: summary.images, per_category: summary.perCategory, size: S, lowres, chance: r3(chance)!, options_only: roundedOptionsOnly(items).accuracy },
    qa,
    differences: differences(byMethod),
    scaling,
    image_control: imageControl,
    look,
    pictures,
    seconds,
    cpu_seconds: cpuSeconds,
  };
}
