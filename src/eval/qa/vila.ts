/**
 * 4KPro-style multiple choice answered by VILA-HD (src/mllm/answer.ts): the same report as the
 * encoder-only evaluation (evaluate.ts — accuracy, per category against chance, tokens
 * through the trunk, latency), answered by the LM trained for the method. For ps3 it adds where
 * the looks landed: the fraction of each question's evidence patches the looks chose (recall),
 * beside what a random choice of the same number of patches would cover on average.
 *
 * The scaling curves: test-time scaling (accuracy against looks at the top scale) and resolution
 * for free (accuracy against the top scale looked at, 1512 vs 3780, at a fixed token budget).
 */
import { loadPixelValues } from '../../io/image.js';
import type { Pixels, SelectionMap } from '../../model/encoder.js';
import { boxGroundTruthPerScale, type LookCount } from '../../model/selection.js';
import { isOutOfMemory, OutOfMemoryError, type EncodeMethod } from '../../model/baselines.js';
import { answerQuestion, type AskOptions } from '../../mllm/answer.js';
import type { VilaHd } from '../../mllm/model.js';
import type { VisualTokens } from '../../mllm/visual.js';
import { categoryResults, median, type QaPrediction, type QaReport } from './evaluate.js';
import type { BenchItem } from './format.js';
import { withOtherImages } from './otherImage.js';
import { renderPlot, type PlotSpec } from '../plot.js';

export interface VilaQaOptions extends AskOptions {
  readonly method: EncodeMethod;
  readonly onProgress?: (done: number, total: number, correct: number) => void;
}

export interface VilaPrediction extends QaPrediction {
  /** ps3 with an evidence box: the fraction of its patches chosen, over all high-res scales */
  readonly evidence_recall: number | null;
  /** what a random choice of as many patches per scale covers on average */
  readonly random_recall: number | null;
}

export interface VilaQaReport extends Omit<QaReport, 'predictions'> {
  readonly answered_by: 'vila-hd';
  readonly model: string;
  readonly settings: QaReport['settings'] & { only_select_first_n_scale: number | null; evidence_looks: boolean; evidence_only: boolean; hint_prompts: boolean };
  readonly evidence_recall_mean: number | null;
  readonly random_recall_mean: number | null;
  readonly lm_tokens_median: number | null;
  readonly predictions: VilaPrediction[];
}

/** Recall of the evidence box's patches by the chosen ones, and the chance level of the same budget. */
export function evidenceRecall(item: BenchItem, maps: readonly SelectionMap[], model: VilaHd, S: number): { recall: number; random: number } | null {
  const box = evidenceBoxAt(item, S);
  if (!box) return null;
  const targets = boxGroundTruthPerScale(model.ps3.config.vision, box, S);
  let hit = 0;
  let total = 0;
  let expected = 0;
  targets.forEach((t, i) => {
    const map = maps[i]!.data;
    let chosen = 0;
    for (let j = 0; j < map.length; j++) chosen += map[j]!;
    let inBox = 0;
    for (let j = 0; j < t.length; j++) {
      if (t[j]! > 0) {
        inBox++;
        hit += map[j]!;
      }
    }
    total += inBox;
    expected += (inBox * chosen) / map.length;
  });
  return total ? { recall: hit / total, random: expected / total } : null;
}

/**
 * One evaluation run: a method's LM with its look options, on the first `limit` questions (all by
 * default: a slow baseline may answer a subset).
 */
export interface VilaRun extends AskOptions {
  readonly method: EncodeMethod;
  readonly limit?: number;
  /** ps3: each question's evidence box forced into the first look (`evidenceBox`), where it has one */
  readonly evidenceLooks?: boolean;
  /** the image-swap control: each question asked of another scene's image (otherImage.ts) */
  readonly otherImage?: boolean;
  /**
   * ps3: the prompt each question's looks are aimed with instead of the prompt head's (AskOptions
   * `prompt`), null where it has none — the text tower's prompt of the item's `prompt` field
   */
  readonly promptOf?: (item: BenchItem) => Float32Array | null;
}

/** The question's evidence box in the coordinates of the S x S pixels the model sees. */
function evidenceBoxAt(item: BenchItem, S: number): [number, number, number, number] | null {
  if (!item.evidence) return null;
  const [w, h] = item.image_size;
  const [x0, y0, x1, y1] = item.evidence.box;
  return [(x0 * S) / w, (y0 * S) / h, (x1 * S) / w, (y1 * S) / h];
}

export interface VilaRunsOptions {
  /** after each answer: which run, its answers so far, its questions, how many were right */
  readonly onProgress?: (run: number, done: number, total: number, correct: number) => void;
}

interface RunState {
  readonly run: VilaRun;
  /** the run's questions: the call's, or with --other-image's images */
  readonly items: readonly BenchItem[];
  readonly total: number;
  readonly predictions: VilaPrediction[];
  readonly answered: BenchItem[];
  readonly decodeMs: number[];
  readonly lmTokens: number[];
  correct: number;
  status: QaReport['status'];
  error: string | null;
  aborted: boolean;
}

/**
 * Answer the questions with several runs at once, image by image: each image is decoded once and
 * every run answers its questions on it (a 4K PNG takes about a second to decode, more than a
 * low-res answer). An out-of-memory stops the run it happened in and is reported, not thrown; one
 * that broke the engine stops every run where it is.
 */
export async function evaluateVilaRuns(model: VilaHd, items: readonly BenchItem[], runs: readonly VilaRun[], o: VilaRunsOptions = {}): Promise<VilaQaReport[]> {
  const cfg = model.ps3.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const n0 = (cfg.scales[0]! / cfg.trunk.patchSize) ** 2;
  const swapped = runs.some((r) => r.otherImage) ? withOtherImages(items) : items;
  const states: RunState[] = runs.map((run) => ({
    run, items: run.otherImage ? swapped : items, total: Math.min(items.length, run.limit ?? items.length), predictions: [], answered: [], decodeMs: [], lmTokens: [], correct: 0, status: 'ok', error: null, aborted: false,
  }));
  // images in the order the questions first name them, with each run's questions on it (indices)
  const images = new Map<string, Map<RunState, number[]>>();
  for (const s of states) {
    s.items.slice(0, s.total).forEach((item, i) => {
      const byRun = images.get(item.imagePath) ?? new Map<RunState, number[]>();
      byRun.set(s, [...(byRun.get(s) ?? []), i]);
      images.set(item.imagePath, byRun);
    });
  }
  let broken = false;
  for (const [imagePath, questionsOf] of images) {
    const here = [...questionsOf.keys()].filter((s) => s.status === 'ok');
    if (here.length === 0) continue;
    const t0 = performance.now();
    const pv = await loadPixelValues(imagePath, { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    const decodeMs = performance.now() - t0;
    const pixels: Pixels = { data: pv.pixels, batch: 1, height: S, width: S };
    for (const s of here) {
      s.decodeMs.push(decodeMs);
      const { method } = s.run;
      // baselines ignore the question: their tokens are computed once per image
      let visual: VisualTokens | null = null;
      try {
        for (const i of questionsOf.get(s)!) {
          const item = s.items[i]!;
          const box = s.run.evidenceLooks && method === 'ps3' ? evidenceBoxAt(item, S) : null;
          const prompt = method === 'ps3' ? s.run.promptOf?.(item) : null;
          const ask = { ...s.run, ...(box ? { evidenceBox: box } : {}), ...(prompt ? { prompt } : {}) };
          const a = await answerQuestion(model, method, pixels, item.question, item.options, ask, visual ?? undefined);
          if (a.visual) visual = a.visual;
          const ok = a.predicted === item.answer;
          if (ok) s.correct++;
          const recall = a.selection ? evidenceRecall(item, a.selection.maps, model, S) : null;
          const tiles = method === 'anyres' ? a.trunkTokens / n0 - 1 : method === 's2' ? a.trunkTokens / n0 : 0;
          s.lmTokens.push(a.visualTokens);
          s.answered.push(item);
          s.predictions.push({
            id: item.id, category: item.category, answer: item.answer, predicted: a.predicted, correct: ok, scores: a.scores.map((x) => Math.round(x * 1e4) / 1e4),
            tokens: a.trunkTokens, tiles, ms_encode: a.msEncode, ms_text: a.msLm, ms: a.msEncode + a.msLm,
            evidence_recall: recall ? Math.round(recall.recall * 1e4) / 1e4 : null, random_recall: recall ? Math.round(recall.random * 1e4) / 1e4 : null,
          });
          o.onProgress?.(states.indexOf(s), s.predictions.length, s.total, s.correct);
        }
      } catch (e) {
        if (!isOutOfMemory(e)) throw e;
        s.status = 'out of memory';
        s.error = e instanceof Error ? e.message : String(e);
        s.aborted = !(e instanceof OutOfMemoryError);
        broken ||= s.aborted;
      } finally {
        try {
          visual?.merged.dispose();
        } catch {
          // the engine aborted: nothing can be freed
        }
      }
      if (broken) break;
    }
    if (broken) {
      for (const s of states) {
        if (s.status !== 'ok' || s.predictions.length === s.total) continue;
        s.status = 'out of memory';
        s.error = 'not finished: the engine stopped after another run ran out of memory';
        s.aborted = true;
      }
      break;
    }
  }
  return states.map((s) => runReport(model, s.items.slice(0, s.total), s));
}

function runReport(model: VilaHd, items: readonly BenchItem[], s: RunState): VilaQaReport {
  const { run, predictions } = s;
  const tokens = predictions.map((p) => p.tokens);
  const recalls = predictions.filter((p) => p.evidence_recall !== null);
  const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, c) => a + c, 0) / xs.length : null);
  const chanceOf = (xs: readonly BenchItem[]): number => xs.reduce((a, i) => a + 1 / i.options.length, 0) / xs.length;
  return {
    answered_by: 'vila-hd',
    model: model.source,
    method: run.method,
    settings: {
      looks: run.method === 'ps3' && run.tokens === undefined ? (run.looks ?? 1) : null, tokens: run.tokens ?? null, resolution: run.resolution ?? model.config.resolutions[run.method] ?? null, hints: false,
      only_select_first_n_scale: run.onlySelectFirstNScale ?? null,
      evidence_looks: run.method === 'ps3' && run.evidenceLooks === true,
      evidence_only: run.method === 'ps3' && run.evidenceLooks === true && run.evidenceOnly === true,
      hint_prompts: run.method === 'ps3' && run.promptOf !== undefined,
    },
    status: s.status,
    error: s.error,
    aborted: s.aborted,
    questions: items.length,
    answered: predictions.length,
    accuracy: predictions.length ? s.correct / predictions.length : null,
    chance: chanceOf(s.answered.length ? s.answered : items),
    per_category: categoryResults(items, predictions),
    tokens_median: median(tokens),
    tokens_mean: mean(tokens),
    tiles_median: median(predictions.map((p) => p.tiles)),
    ms_per_question_median: median(predictions.map((p) => p.ms)),
    ms_encode_median: median(predictions.map((p) => p.ms_encode)),
    ms_text_median: median(predictions.map((p) => p.ms_text)),
    ms_decode_median: median(s.decodeMs),
    evidence_recall_mean: mean(recalls.map((p) => p.evidence_recall!)),
    random_recall_mean: mean(recalls.map((p) => p.random_recall!)),
    lm_tokens_median: median(s.lmTokens),
    predictions,
  };
}

/** Answer every item with one method's LM. An out-of-memory stops the run and is reported, not thrown. */
export async function evaluateVilaQa(model: VilaHd, items: readonly BenchItem[], options: VilaQaOptions): Promise<VilaQaReport> {
  const { onProgress, ...run } = options;
  const [report] = await evaluateVilaRuns(model, items, [run], onProgress ? { onProgress: (_run, done, total, correct) => onProgress(done, total, correct) } : {});
  return report!;
}

export interface ScalingPoint {
  readonly x: number;
  readonly accuracy: number | null;
  /** tokens through the trunk per question (median) */
  readonly tokens: number | null;
  /** evidence recall of the looks (mean) */
  readonly recall: number | null;
  /** questions answered */
  readonly questions: number;
}

export interface ScalingCurves {
  /** accuracy against looks, at the top scale */
  readonly test_time: ScalingPoint[];
  /** accuracy against the top scale looked at, at `budget` high-res tokens */
  readonly resolution: ScalingPoint[];
  readonly budget: number;
  readonly questions: number;
}

/** What both curves measure: looks at the top scale; top scales at a high-res token budget; on the first `limit` questions. */
export interface ScalingPlan {
  readonly looks: readonly LookCount[];
  readonly budget: number;
  /** high-res scales of the PS3 model: looking at top t restricts the looks to the scales up to t (`onlySelectFirstNScale`) */
  readonly tops: readonly number[];
  readonly limit?: number;
}

/** The ps3 runs of both curves: one per look count, then one per top scale. */
export function scalingRuns(model: VilaHd, plan: ScalingPlan): VilaRun[] {
  const scales = model.ps3.config.vision.scales;
  const limit = plan.limit !== undefined ? { limit: plan.limit } : {};
  return [
    ...plan.looks.map((looks): VilaRun => ({ method: 'ps3', looks, ...limit })),
    ...plan.tops.map((top): VilaRun => {
      const n = scales.indexOf(top);
      if (n < 1) throw new Error(`scalingRuns: ${top} is not a high-res scale (${scales.slice(1).join(', ')})`);
      return { method: 'ps3', tokens: plan.budget, ...(n < scales.length - 1 ? { onlySelectFirstNScale: n } : {}), ...limit };
    }),
  ];
}

/** The share of answers that are right; null when there are none. */
export function accuracyOf(predictions: readonly { correct: boolean }[]): number | null {
  return predictions.length ? predictions.filter((p) => p.correct).length / predictions.length : null;
}

/** A curve's point from the answers of one setting (or those of them on the curve's questions). */
export function scalingPoint(x: number, predictions: readonly VilaPrediction[]): ScalingPoint {
  const recalls = predictions.filter((p) => p.evidence_recall !== null).map((p) => p.evidence_recall!);
  return {
    x,
    accuracy: accuracyOf(predictions),
    tokens: median(predictions.map((p) => p.tokens)),
    recall: recalls.length ? recalls.reduce((a, c) => a + c, 0) / recalls.length : null,
    questions: predictions.length,
  };
}

/** Both curves from the answers of `scalingRuns(model, plan)`, in that order. */
export function curvesFrom(plan: ScalingPlan, answers: ReadonlyArray<readonly VilaPrediction[]>, questions: number): ScalingCurves {
  if (answers.length !== plan.looks.length + plan.tops.length) throw new Error(`curvesFrom: ${answers.length} runs for ${plan.looks.length} looks and ${plan.tops.length} top scales`);
  return {
    test_time: plan.looks.map((l, i) => scalingPoint(l === 'all' ? Infinity : l, answers[i]!)),
    resolution: plan.tops.map((t, i) => scalingPoint(t, answers[plan.looks.length + i]!)),
    budget: plan.budget,
    questions,
  };
}

/** Both curves with the ps3 LM, every run answering image by image (evaluateVilaRuns). */
export async function scalingCurves(model: VilaHd, items: readonly BenchItem[], plan: ScalingPlan, o: VilaRunsOptions = {}): Promise<ScalingCurves> {
  const reports = await evaluateVilaRuns(model, items, scalingRuns(model, plan), o);
  return curvesFrom(plan, reports.map((r) => r.predictions), Math.min(items.length, plan.limit ?? items.length));
}

/** The two curves as plots (accuracy in %, chance line). */
export async function plotScaling(curves: ScalingCurves, chance: number, files: { testTime: string; resolution: string }): Promise<void> {
  const hl = [{ y: 100 * chance, label: `chance ${(100 * chance).toFixed(1)}%` }];
  const pts = (ps: readonly ScalingPoint[]) => ps.map((p) => ({ x: p.x, y: p.accuracy === null ? null : 100 * p.accuracy, label: p.tokens === null ? '' : `${p.tokens} tok` }));
  const testTime: PlotSpec = { title: `Test-time scaling: VILA-HD accuracy vs looks (4K, ${curves.questions} questions)`, xLabel: 'looks', yLabel: 'accuracy (%)', kind: 'line', yDomain: [0, 100], hlines: hl, xTicks: curves.test_time.map((p) => p.x).filter(Number.isFinite), series: [{ name: 'ps3', points: pts(curves.test_time.filter((p) => Number.isFinite(p.x))) }] };
  const resolution: PlotSpec = { title: `Resolution for free: accuracy vs top scale (${curves.budget} tokens, ${curves.questions} questions)`, xLabel: 'top scale looked at (px)', yLabel: 'accuracy (%)', kind: 'line', yDomain: [0, 100], hlines: hl, xTicks: curves.resolution.map((p) => p.x), series: [{ name: 'ps3', points: pts(curves.resolution) }] };
  await renderPlot(testTime, files.testTime);
  await renderPlot(resolution, files.resolution);
}
