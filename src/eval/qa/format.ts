/**
 * The 4KPro-style benchmark format: JSONL, one multiple-choice question per line.
 *
 * ```json
 * { "id": "000003-sign", "image": "images/000003.png", "question": "What does the red sign read?",
 *   "options": ["K3", "K8", "X3", "A4"], "answer": 0, "category": "sign-reading", "image_size": [3780, 3780] }
 * ```
 *
 * Required: `id` (unique), `image` (a path relative to the JSONL file), `question`, `options`
 * (2 or more distinct strings; 4KPro and our generator use 4), `answer` (index into `options`),
 * `category`, `image_size` ([width, height] in pixels of the file). Optional, written by our
 * generator and ignored by anything that does not know them:
 *  - `prompt`: what to look for, as caption-style text (used instead of the question as the
 *    top-down prompt; it never contains the answer);
 *  - `statements`: one caption-style statement per option (scored instead of `question + option`);
 *  - `evidence`: how the ground truth was made: the scene objects the answer depends on, their
 *    box, and the size in pixels at the low-res scale of the detail that decides the answer.
 * Errors name the file, the line and the field.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '../../errors.js';

const evidenceSchema = z
  .object({
    object_ids: z.array(z.number().int().nonnegative()),
    box: z.tuple([z.number(), z.number(), z.number(), z.number()]),
    /** the deciding detail's size in pixels once the image is squashed to `lowres` px */
    detail_px_at_lowres: z.number().nonnegative(),
    lowres: z.number().int().positive(),
  })
  .passthrough();

export const benchItemSchema = z
  .object({
    id: z.string().min(1),
    image: z.string().min(1),
    question: z.string().min(1),
    options: z.array(z.string().min(1)).min(2),
    answer: z.number().int().nonnegative(),
    category: z.string().min(1),
    image_size: z.tuple([z.number().int().positive(), z.number().int().positive()]),
    prompt: z.string().min(1).optional(),
    statements: z.array(z.string().min(1)).optional(),
    evidence: evidenceSchema.optional(),
  })
  .passthrough()
  .superRefine((item, ctx) => {
    if (item.answer >= item.options.length) {
      ctx.addIssue({ code: 'custom', path: ['answer'], message: `index ${item.answer} is out of range for ${item.options.length} options` });
    }
    if (new Set(item.options).size !== item.options.length) {
      ctx.addIssue({ code: 'custom', path: ['options'], message: 'options must be distinct' });
    }
    if (item.statements && item.statements.length !== item.options.length) {
      ctx.addIssue({ code: 'custom', path: ['statements'], message: `${item.statements.length} statements for ${item.options.length} options` });
    }
  });

export type BenchItemJson = z.infer<typeof benchItemSchema>;

/** A question as read: the JSON fields plus where its image is on disk and its line. */
export interface BenchItem extends BenchItemJson {
  /** `image` resolved against the JSONL file's folder */
  readonly imagePath: string;
  /** 1-based line in the JSONL file */
  readonly line: number;
}

function issuePath(p: readonly PropertyKey[]): string {
  return p.length === 0 ? '(item)' : p.map((k) => (typeof k === 'number' ? `[${k}]` : String(k))).join('.').replace(/\.\[/g, '[');
}

/** Validate one parsed line; throws a UserError naming `where` (file:line) and the field. */
export function parseBenchItem(json: unknown, where: string): BenchItemJson {
  const r = benchItemSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new UserError(`${where}: field ${issuePath(issue.path)}: ${issue.message}`);
  }
  return r.data;
}

/** Parse JSONL text (blank lines skipped); `file` is used in messages and to resolve image paths. */
export function parseBenchmark(text: string, file: string): BenchItem[] {
  const dir = path.dirname(path.resolve(file));
  const items: BenchItem[] = [];
  const ids = new Map<string, number>();
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (e) {
      throw new UserError(`${file}:${line}: not valid JSON (${(e as Error).message})`);
    }
    const item = parseBenchItem(json, `${file}:${line}`);
    const seen = ids.get(item.id);
    if (seen !== undefined) throw new UserError(`${file}:${line}: field id: "${item.id}" was already used on line ${seen}`);
    ids.set(item.id, line);
    items.push({ ...item, imagePath: path.resolve(dir, item.image), line });
  });
  if (items.length === 0) throw new UserError(`${file}: no questions`);
  return items;
}

/** Read and validate a benchmark JSONL file. */
export function loadBenchmark(file: string): BenchItem[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parseBenchmark(text, file);
}

/** One JSONL line for an item (the fields in the documented order). */
export function formatBenchItem(item: BenchItemJson): string {
  const { id, image, question, options, answer, category, image_size, ...rest } = item;
  return JSON.stringify({ id, image, question, options, answer, category, image_size, ...rest });
}
