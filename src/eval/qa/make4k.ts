/**
 * `ps3 eval make-4k`: a 4KPro-lite benchmark folder — the scenes rendered, their questions
 * (src/data/qa/generate.ts) in the benchmark format (format.ts), the PNGs and a manifest that
 * records the generator's version and the held-out seed.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { renderScene } from '../../data/scene/render.js';
import { SYNTH_VERSION, encodeImage as encodeSceneImage, sceneRng } from '../../data/synth.js';
import { HELDOUT_SEED_BASE, MAX_DETAIL_PX, QA_CATEGORIES, QA_VERSION, questionRng, sceneQuestions } from '../../data/qa/generate.js';
import { formatBenchItem, type BenchItemJson } from './format.js';

/**
 * A line to show when `benchFile` sits beside a `make-4k` manifest of an older generator (options
 * made as edits of the truth, which the options alone answer); null otherwise, or without a
 * manifest (a benchmark from elsewhere).
 */
export function oldGeneratorWarning(benchFile: string): string | null {
  let manifest: { generator?: unknown; qa_version?: unknown };
  try {
    manifest = JSON.parse(readFileSync(path.join(path.dirname(benchFile), 'manifest.json'), 'utf8')) as typeof manifest;
  } catch {
    return null;
  }
  if (manifest.generator !== 'ps3 eval make-4k') return null;
  const version = typeof manifest.qa_version === 'number' ? manifest.qa_version : 1;
  if (version >= QA_VERSION) return null;
  return `warning: ${benchFile} was made by make-4k's question generator ${version}, whose options give the answer away (the truth is the option the others are edits of); make it again with \`ps3 eval make-4k\` (generator ${QA_VERSION}) for accuracies that measure the image`;
}

export function checkHeldOutSeed(seed: number, force = false): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UserError(`--seed must be an integer from 0 to ${0xffffffff}, got ${seed}`);
  if (seed < HELDOUT_SEED_BASE && !force) {
    throw new UserError(`--seed ${seed} is in the training range [0, ${HELDOUT_SEED_BASE}) that \`ps3 data synth\` seeds use; held-out benchmarks take seeds from ${HELDOUT_SEED_BASE} (or pass --force)`);
  }
}

export interface Make4kOptions {
  readonly out: string;
  /** number of questions */
  readonly count: number;
  /** long side of each image (square images) */
  readonly size: number;
  readonly seed: number;
  /** questions per image, at most one per category (default 4) */
  readonly perImage?: number;
  readonly lowres?: number;
  /** allow a seed in the training range */
  readonly force?: boolean;
  /** write the PNGs (default true; tests may skip them) */
  readonly writeImages?: boolean;
}

export interface Make4kSummary {
  readonly questions: number;
  readonly images: number;
  readonly perCategory: Record<string, number>;
  readonly file: string;
  readonly seconds: number;
}

/**
 * Writes `out/images/NNNNNN.png`, `out/scenes/NNNNNN.json` (the object list the answers come
 * from), `out/questions.jsonl` and `out/manifest.json`. Categories rotate from image to image so
 * that fewer than four questions per image still cover all of them.
 */
export async function makeBenchmark(options: Make4kOptions, onProgress?: (done: number) => void): Promise<Make4kSummary> {
  const { out, count, size, seed } = options;
  const perImage = options.perImage ?? QA_CATEGORIES.length;
  const lowres = options.lowres ?? 378;
  checkHeldOutSeed(seed, options.force);
  if (!Number.isInteger(count) || count < 1) throw new UserError(`--count must be a positive integer, got ${count}`);
  if (!Number.isInteger(size) || size < 64) throw new UserError(`--size must be an integer of at least 64, got ${size}`);
  if (!Number.isInteger(perImage) || perImage < 1 || perImage > QA_CATEGORIES.length) throw new UserError(`--per-image must be from 1 to ${QA_CATEGORIES.length}, got ${perImage}`);
  const started = performance.now();
  await mkdir(path.join(out, 'images'), { recursive: true });
  await mkdir(path.join(out, 'scenes'), { recursive: true });
  const lines: string[] = [];
  const perCategory: Record<string, number> = Object.fromEntries(QA_CATEGORIES.map((c) => [c, 0]));
  let pending: Promise<void> | null = null;
  let images = 0;
  const maxImages = count * 20;
  for (let index = 0; lines.length < count; index++) {
    if (index >= maxImages) throw new UserError(`only ${lines.length} questions from ${maxImages} scenes at ${size} px: details are too large at ${lowres} px for 4K-only questions (use a larger --size)`);
    const scene = renderScene(sceneRng(seed, index), { width: size, height: size });
    const rotation = index % QA_CATEGORIES.length;
    const categories = [...QA_CATEGORIES.slice(rotation), ...QA_CATEGORIES.slice(0, rotation)];
    const drafts = sceneQuestions(scene, questionRng(seed, index), { lowres, categories }).slice(0, Math.min(perImage, count - lines.length));
    if (drafts.length === 0) continue;
    const name = String(index).padStart(6, '0');
    const image = `images/${name}.png`;
    for (const d of drafts) {
      const item: BenchItemJson = {
        id: `${name}-${d.category}`, image, question: d.question, options: d.options, answer: d.answer, category: d.category,
        image_size: [scene.width, scene.height], prompt: d.prompt, statements: d.statements, evidence: d.evidence,
      };
      lines.push(formatBenchItem(item));
      perCategory[d.category]!++;
    }
    images++;
    const sceneJson = { generator: 'ps3 eval make-4k', synth_version: SYNTH_VERSION, seed, index, width: scene.width, height: scene.height, objects: scene.objects };
    await writeFile(path.join(out, 'scenes', `${name}.json`), `${JSON.stringify(sceneJson)}\n`);
    // encode this image while the next scene renders
    await pending;
    pending = options.writeImages === false ? null : encodeSceneImage(scene.rgb, scene.width, scene.height, 'png').then((png) => writeFile(path.join(out, image), png));
    onProgress?.(lines.length);
  }
  await pending;
  const file = path.join(out, 'questions.jsonl');
  await writeFile(file, `${lines.join('\n')}\n`);
  const manifest = {
    generator: 'ps3 eval make-4k', synth_version: SYNTH_VERSION, qa_version: QA_VERSION, seed, heldout_seed_base: HELDOUT_SEED_BASE, forced: seed < HELDOUT_SEED_BASE,
    questions: lines.length, images, size, lowres, per_image: perImage, per_category: perCategory, max_detail_px: MAX_DETAIL_PX, file: 'questions.jsonl',
  };
  await writeFile(path.join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { questions: lines.length, images, perCategory, file, seconds: (performance.now() - started) / 1000 };
}
