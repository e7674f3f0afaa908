/**
 * `ps3 data caption <images> --endpoint URL --model NAME --out DIR`: local captions for the
 * user's own high-resolution images from an OpenAI-compatible vision chat server, written as
 * key-matched shards for `ps3 train --data DIR`. Resumable: run it again after a kill or a failure.
 */
import { captionImages, type CaptionEvent, type CaptionSummary } from '../data/caption/pipeline.js';
import type { CropFormat } from '../data/caption/crops.js';
import { UserError } from '../errors.js';
import { progressBar, type Progress } from './progress.js';
import { EXIT } from './run.js';
import { outputFolder } from './inputs.js';

export interface DataCaptionOptions {
  endpoint?: string;
  model?: string;
  out?: string;
  apiKey?: string;
  regions?: string;
  cropSize?: string;
  margin?: string;
  cropFormat?: string;
  concurrency?: string;
  timeoutMs?: string;
  retries?: string;
  maxTokens?: string;
  perShard?: string;
}

/** Shown after the options in `ps3 data caption --help`. */
export const DATA_CAPTION_HELP = `
Regions (deterministic edge density): the image is downscaled to a long side of 1024, its Sobel
gradient magnitude thresholded (half of Otsu's threshold, at least a step of 8 grey levels) and
closed with a square of 1 % of the long side; the 8-connected components' boxes of at least
0.1 % of the image and 32 px a side are kept (one over 25 % is cut into tiles of a quarter of the
long side), boxes with IoU > 0.5 merged, whole components ranked before tiles, each by edge
density x area. The best --regions are grown by --margin on each side, cropped from the
full-resolution image and sent with their long side at most --crop-size. The whole image (same
size limit) gives global_text.

Output: DIR/images/shard-NNNNNN.tar (the original file bytes, KEY.jpg|png|webp) and
DIR/annotations/shard-NNNNNN.tar (KEY.json: text, box [x0, y0, x1, y1] in pixels of the image
after EXIF orientation, global_text, type "caption"). Keys come from the file paths.

Resume: every caption is logged in DIR/.caption-progress.jsonl as it arrives; run the same
command again to finish after a kill, Ctrl-C or failures (nothing is asked twice), and the shards
are rewritten from the log. The endpoint is the server root, .../v1, or .../chat/completions;
--api-key defaults to $OPENAI_API_KEY. Retried: network errors, timeouts, 408, 429, 5xx (with
back-off, honouring Retry-After); other 4xx fail the image. Train with a --init model that has
tokenizer files (the folder has no tokenizer/).

Exit code: 0 when every image is captioned, 3 when some failed or were skipped, 2 for bad
options, 130 when interrupted, 1 only for a bug.`;

function integer(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UserError(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

function fraction(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = /^\s*\d*\.?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!(n >= 0 && n <= 1)) throw new UserError(`${name} must be a number from 0 to 1, got "${value}"`);
  return n;
}

function cropFormat(value: string | undefined): CropFormat {
  const v = (value ?? 'jpeg').toLowerCase();
  if (v === 'jpeg' || v === 'jpg') return 'jpeg';
  if (v === 'png') return 'png';
  throw new UserError(`--crop-format must be jpeg or png, got "${value}"`);
}

function required(name: string, value: string | undefined): string {
  if (value === undefined || value.trim() === '') throw new UserError(`${name} is required`);
  return value;
}

function summaryLine(s: CaptionSummary, out: string): string {
  const parts = [
    `${s.images} images`,
    `${s.captioned} captioned${s.earlier > 0 ? ` (+${s.earlier} earlier)` : ''}`,
    `${s.skipped} skipped`,
    `${s.failed} failed`,
    `${s.requests} requests`,
    `${s.retries} retries`,
  ];
  const shards = s.samples > 0 ? `${s.samples} samples in ${s.shards} shard pair${s.shards === 1 ? '' : 's'} under ${out}` : 'no shards written';
  return `data caption: ${parts.join(', ')}; ${shards}${s.interrupted ? ' (interrupted: run again to finish)' : ''}`;
}

export async function dataCaptionCommand(images: string, options: DataCaptionOptions): Promise<number> {
  const endpoint = required('--endpoint', options.endpoint);
  const model = required('--model', options.model);
  const out = outputFolder('--out', required('--out', options.out));
  const apiKey = options.apiKey ?? process.env['OPENAI_API_KEY'];
  const settings = {
    regions: integer('--regions', options.regions, 6, 0, 64),
    cropSize: integer('--crop-size', options.cropSize, 768, 32, 8192),
    margin: fraction('--margin', options.margin, 0.1),
    cropFormat: cropFormat(options.cropFormat),
    concurrency: integer('--concurrency', options.concurrency, 2, 1, 256),
    timeoutMs: integer('--timeout-ms', options.timeoutMs, 120_000, 1, 3_600_000),
    retries: integer('--retries', options.retries, 5, 0, 100),
    maxTokens: integer('--max-tokens', options.maxTokens, 200, 1, 100_000),
    perShard: integer('--per-shard', options.perShard, 100, 1, 1_000_000),
  };

  const print = (line: string): void => void process.stdout.write(`${line}\n`);
  // a line on a terminal with a progress bar first clears the bar's line; the bar redraws on its next update
  const problem = (line: string): void => void process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}${line}\n`);
  // `as`: assigned in a callback, which the compiler's narrowing does not see
  let bar = null as Progress | null;
  let done = 0;
  const counts = { captioned: 0, failed: 0, skipped: 0 };
  const onEvent = (e: CaptionEvent): void => {
    if (e.type === 'start') {
      const todo = e.images - e.earlier;
      print(`caption: ${e.images} images in ${images} (${e.earlier} finished earlier, ${todo} to do${e.ignored > 0 ? `, ${e.ignored} other files ignored` : ''}); ${model} at ${e.url} -> ${out}`);
      bar = progressBar(todo, 'caption', '{captioned} captioned, {failed} failed, {skipped} skipped, {retries} retries');
      bar.update(0, { captioned: '0', failed: '0', skipped: '0', retries: '0' });
      return;
    }
    done++;
    counts[e.outcome]++;
    if (e.message !== undefined) problem(`caption: ${e.file}: ${e.outcome}: ${e.message}`);
    bar?.update(done, { captioned: String(counts.captioned), failed: String(counts.failed), skipped: String(counts.skipped), retries: String(e.retries) });
  };

  // Ctrl-C stops cleanly (shards of what is finished are written); a second one kills as usual
  const interrupt = new AbortController();
  const onSigint = (): void => {
    problem('caption: interrupted; writing shards of what is finished (Ctrl-C again to quit at once)');
    interrupt.abort();
  };
  process.once('SIGINT', onSigint);
  let summary: CaptionSummary;
  try {
    summary = await captionImages({
      images,
      out,
      endpoint,
      model,
      ...(apiKey ? { apiKey } : {}),
      ...settings,
      signal: interrupt.signal,
      onEvent,
    });
  } finally {
    process.removeListener('SIGINT', onSigint);
    bar?.stop();
  }
  for (const line of summary.leftOut) problem(`caption: ${line}`);
  print(summaryLine(summary, out));
  if (summary.interrupted) return EXIT.interrupted;
  return summary.failed > 0 || summary.skipped > 0 || summary.leftOut.length > 0 ? EXIT.badData : EXIT.ok;
}
