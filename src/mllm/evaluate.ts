/**
 * 4KPro-style multiple choice answered by VILA-HD (answer.ts): the same report as the encoder-
 * only evaluation (src/eval/qa/evaluate.ts — accuracy, per category against chance, tokens
 * through the trunk, latency), answered by the LM trained for the method. For ps3 it adds where
 * the looks landed: the fraction of each question's evidence patches the looks chose (recall),
 * beside what a random choice of the same number of patches would cover on average.
 *
 * The scaling curves: test-time scaling (accuracy against looks at the top scale) and resolution
 * for free (accuracy against the top scale looked at, 1512 vs 3780, at a fixed token budget).
 */
import { loadPixelValues } from '../io/image.js';
import type { Pixels, SelectionMap } from '../model/encoder.js';
import type { LookCount } from '../model/selection.js';
import { groundTruthPerScale } from '../model/selection.js';
import { boxToGtMap } from '../train/samples.js';
import { isOutOfMemory, OutOfMemoryError, type EncodeMethod } from '../eval/baselines.js';
import { categoryResults, median, type QaPrediction, type QaReport } from '../eval/qa/evaluate.js';
import type { BenchItem } from '../eval/qa/format.js';
import { renderPlot, type PlotSpec } from '../eval/plot.js';
import { answerQuestion, type AskOptions } from './answer.js';
import type { VilaHd } from './model.js';
import type { VisualTokens } from './visual.js';

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
  readonly settings: QaReport['settings'] & { only_select_first_n_scale: number | null };
  readonly evidence_recall_mean: number | null;
  readonly random_recall_mean: number | null;
  readonly lm_tokens_median: number | null;
  readonly predictions: VilaPrediction[];
}

/** Recall of the evidence box's patches by the chosen ones, and the chance level of the same budget. */
export function evidenceRecall(item: BenchItem, maps: readonly SelectionMap[], model: VilaHd, S: number): { recall: number; random: number } | null {
  if (!item.evidence) return null;
  const [w, h] = item.image_size;
  const [x0, y0, x1, y1] = item.evidence.box;
  const box: [number, number, number, number] = [(x0 * S) / w, (y0 * S) / h, (x1 * S) / w, (y1 * S) / h];
  const targets = groundTruthPerScale(model.ps3.config.vision, boxToGtMap(box, S), 1, S, S);
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

/** Answer every item with one method's LM. An out-of-memory stops the run and is reported, not thrown. */
export async function evaluateVilaQa(model: VilaHd, items: readonly BenchItem[], options: VilaQaOptions): Promise<VilaQaReport> {
  const cfg = model.ps3.config.vision;
  const S = cfg.scales[cfg.scales.length - 1]!;
  const n0 = (cfg.scales[0]! / cfg.trunk.patchSize) ** 2;
  const predictions: VilaPrediction[] = [];
  const decodeMs: number[] = [];
  const lmTokens: number[] = [];
  let status: QaReport['status'] = 'ok';
  let error: string | null = null;
  let aborted = false;
  const slot: { image: { path: string; pixels: Pixels; visual: VisualTokens | null } | null } = { image: null };
  let correct = 0;
  const forget = (): void => {
    slot.image?.visual?.merged.dispose();
    slot.image = null;
  };
  try {
    for (const item of items) {
      if (slot.image?.path !== item.imagePath) {
        forget();
        const t0 = performance.now();
        const pv = await loadPixelValues(item.imagePath, { size: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
        decodeMs.push(performance.now() - t0);
        slot.image = { path: item.imagePath, pixels: { data: pv.pixels, batch: 1, height: S, width: S }, visual: null };
      }
      const current = slot.image!;
      const a = await answerQuestion(model, options.method, current.pixels, item.question, item.options, options, current.visual ?? undefined);
      if (a.visual) current.visual = a.visual;
      const ok = a.predicted === item.answer;
      if (ok) correct++;
      const recall = a.selection ? evidenceRecall(item, a.selection.maps, model, S) : null;
      const tiles = options.method === 'anyres' ? a.trunkTokens / n0 - 1 : options.method === 's2' ? a.trunkTokens / n0 : 0;
      lmTokens.push(a.visualTokens);
      predictions.push({
        id: item.id, category: item.category, answer: item.answer, predicted: a.predicted, correct: ok, scores: a.scores.map((s) => Math.round(s * 1e4) / 1e4),
        tokens: a.trunkTokens, tiles, ms_encode: a.msEncode, ms_text: a.msLm, ms: a.msEncode + a.msLm,
        evidence_recall: recall ? Math.round(recall.recall * 1e4) / 1e4 : null, random_recall: recall ? Math.round(recall.random * 1e4) / 1e4 : null,
      });
      options.onProgress?.(predictions.length, items.length, correct);
    }
    forget();
  } catch (e) {
    if (!isOutOfMemory(e)) throw e;
    status = 'out of memory';
    error = e instanceof Error ? e.message : String(e);
    aborted = !(e instanceof OutOfMemoryError);
    try {
      forget();
    } catch {
      // the engine aborted: nothing can be freed
    }
  }
  const tokens = predictions.map((p) => p.tokens);
  const answeredItems = items.slice(0, predictions.length);
  const recalls = predictions.filter((p) => p.evidence_recall !== null);
  const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, c) => a + c, 0) / xs.length : null);
  return {
    answered_by: 'vila-hd',
    model: model.source,
    method: options.method,
    settings: {
      looks: options.method === 'ps3' && options.tokens === undefined ? (options.looks ?? 1) : null, tokens: options.tokens ?? null, resolution: options.resolution ?? null, hints: false,
      only_select_first_n_scale: options.onlySelectFirstNScale ?? null,
    },
    status,
    error,
    aborted,
    questions: items.length,
    answered: predictions.length,
    accuracy: predictions.length ? correct / predictions.length : null,
    chance: (answeredItems.length ? answeredItems : items).reduce((a, i) => a + 1 / i.options.length, 0) / (answeredItems.length || items.length),
    per_category: categoryResults(items, predictions),
    tokens_median: median(tokens),
    tokens_mean: mean(tokens),
    tiles_median: median(predictions.map((p) => p.tiles)),
    ms_per_question_median: median(predictions.map((p) => p.ms)),
    ms_encode_median: median(predictions.map((p) => p.ms_encode)),
    ms_text_median: median(predictions.map((p) => p.ms_text)),
    ms_decode_median: median(decodeMs),
    evidence_recall_mean: mean(recalls.map((p) => p.evidence_recall!)),
    random_recall_mean: mean(recalls.map((p) => p.random_recall!)),
    lm_tokens_median: median(lmTokens),
    predictions,
  };
}

export interface ScalingPoint {
  readonly x: number;
  readonly accuracy: number | null;
  readonly tokens: number | null;
  readonly recall: number | null;
}

export interface ScalingCurves {
  /** accuracy against looks, at the top scale */
  readonly test_time: ScalingPoint[];
  /** accuracy against the top scale looked at, at `budget` high-res tokens */
  readonly resolution: ScalingPoint[];
  readonly budget: number;
  readonly questions: number;
}

/**
 * Both curves with the ps3 LM. `tops` are high-res scales of the PS3 model: looking at top t means
 * restricting the looks to the scales up to t (`onlySelectFirstNScale`).
 */
export async function scalingCurves(
  model: VilaHd,
  items: readonly BenchItem[],
  o: { looks: readonly LookCount[]; budget: number; tops: readonly number[]; onRun?: (label: string) => VilaQaOptions['onProgress'] },
): Promise<ScalingCurves> {
  const scales = model.ps3.config.vision.scales;
  const point = (x: number, r: VilaQaReport): ScalingPoint => ({ x, accuracy: r.accuracy, tokens: r.tokens_median, recall: r.evidence_recall_mean });
  const testTime: ScalingPoint[] = [];
  for (const looks of o.looks) {
    const r = await evaluateVilaQa(model, items, { method: 'ps3', looks, ...(o.onRun ? { onProgress: o.onRun(`${looks} look(s)`) } : {}) });
    testTime.push(point(looks === 'all' ? Infinity : looks, r));
  }
  const resolution: ScalingPoint[] = [];
  for (const top of o.tops) {
    const n = scales.indexOf(top);
    if (n < 1) throw new Error(`scalingCurves: ${top} is not a high-res scale (${scales.slice(1).join(', ')})`);
    const r = await evaluateVilaQa(model, items, { method: 'ps3', tokens: o.budget, ...(n < scales.length - 1 ? { onlySelectFirstNScale: n } : {}), ...(o.onRun ? { onProgress: o.onRun(`top ${top}`) } : {}) });
    resolution.push(point(top, r));
  }
  return { test_time: testTime, resolution, budget: o.budget, questions: items.length };
}

/** The two curves as plots (accuracy in %, chance line). */
export async function plotScaling(curves: ScalingCurves, chance: number, files: { testTime: string; resolution: string }): Promise<void> {
  const hl = [{ y: 100 * chance, label: `chance ${(100 * chance).toFixed(1)}%` }];
  const pts = (ps: readonly ScalingPoint[]) => ps.map((p) => ({ x: p.x, y: p.accuracy === null ? null : 100 * p.accuracy, label: p.tokens === null ? '' : `${p.tokens} tok` }));
  const testTime: PlotSpec = { title: 'Test-time scaling: VILA-HD accuracy vs looks (4K)', xLabel: 'looks', yLabel: 'accuracy (%)', kind: 'line', yDomain: [0, 100], hlines: hl, xTicks: curves.test_time.map((p) => p.x).filter(Number.isFinite), series: [{ name: 'ps3', points: pts(curves.test_time.filter((p) => Number.isFinite(p.x))) }] };
  const resolution: PlotSpec = { title: `Resolution for free: accuracy vs top scale (${curves.budget} tokens)`, xLabel: 'top scale looked at (px)', yLabel: 'accuracy (%)', kind: 'line', yDomain: [0, 100], hlines: hl, xTicks: curves.resolution.map((p) => p.x), series: [{ name: 'ps3', points: pts(curves.resolution) }] };
  await renderPlot(testTime, files.testTime);
  await renderPlot(resolution, files.resolution);
}
