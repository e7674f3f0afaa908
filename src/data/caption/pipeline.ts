/**
 * Local captions for the user's own high-resolution images, written in the reference's shard
 * format (ps3-spec §3) so `ps3 train --data DIR` can use them.
 *
 * Per image: decode (EXIF orientation applied), propose up to K detail regions (proposals.ts),
 * grow each by a margin, crop it from the full-resolution image and ask a vision chat model for
 * a caption of it; one more caption of the whole image becomes `global_text`. Requests share a
 * concurrency limit; every caption is logged as it arrives (progressLog.ts), so a re-run asks
 * only for what is missing. At the end the shards are (re)written from the log (output.ts).
 *
 * Orientation: boxes are in the frame `decodeImage` gives, i.e. after EXIF orientation; the
 * image shards hold the file's bytes, except that an image with an orientation tag other than 1
 * is stored as its displayed pixels without the tag (output.ts), so a reader that ignores EXIF
 * orientation (PIL's plain `Image.open`, as the reference's loader) sees the same pixels under
 * each box. Each box is the region the captioner saw: the proposal grown by the margin. An image
 * without regions is written with its global caption only.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { isUserError, UserError } from '../../errors.js';
import { decodeImage, type RgbImage } from '../../io/image.js';
import type { Box } from '../../io/shards.js';
import { RequestFailed, VisionClient, type VisionClientOptions } from './client.js';
import { cropImage, expandBox, imageDataUrl, type CropFormat } from './crops.js';
import { assignKeys, hashFile, listImages, sha256, sniffFormat, type ImageExt, type InputFile } from './inputs.js';
import { Limiter } from './limiter.js';
import { existingShards, writeOutputShards, type OutputSample } from './output.js';
import { PROGRESS_FILE, ProgressLog, type CaptionSettings, type PartId } from './progressLog.js';
import { PROPOSAL_METHOD, proposeRegions } from './proposals.js';

export const REGION_PROMPT = 'Describe this close-up region of a larger image in one or two sentences: objects, colours, any text.';
export const GLOBAL_PROMPT = 'Describe this image in one or two sentences: the scene, the main objects, colours, any text.';

export interface CaptionRunOptions extends VisionClientOptions {
  /** a folder of images (searched recursively) or one image file */
  readonly images: string;
  /** output folder: images/, annotations/ and the progress log */
  readonly out: string;
  /** K: at most this many regions per image */
  readonly regions: number;
  /** long side, in pixels, of what is sent (crops and the whole image) */
  readonly cropSize: number;
  /** each region grows by this fraction of its width and height on every side */
  readonly margin: number;
  readonly cropFormat: CropFormat;
  /** requests in flight at most (also the number of images worked on at once) */
  readonly concurrency: number;
  readonly perShard: number;
  /** stops the run: requests in flight are dropped, shards are written from what is finished */
  readonly signal?: AbortSignal;
  readonly onEvent?: (event: CaptionEvent) => void;
}

export type ImageOutcome = 'captioned' | 'failed' | 'skipped';

export type CaptionEvent =
  | {
      readonly type: 'start';
      /** images found */
      readonly images: number;
      /** of those, finished by earlier runs */
      readonly earlier: number;
      /** other files in the folder, not taken */
      readonly ignored: number;
      readonly url: string;
    }
  | {
      readonly type: 'image';
      readonly file: string;
      readonly key: string;
      readonly outcome: ImageOutcome;
      /** why it failed or was skipped, one line */
      readonly message?: string;
      /** totals so far */
      readonly requests: number;
      readonly retries: number;
    };

export interface CaptionSummary {
  readonly images: number;
  readonly earlier: number;
  readonly captioned: number;
  /** unreadable or unsupported files */
  readonly skipped: number;
  /** images a request failed for for good */
  readonly failed: number;
  readonly interrupted: boolean;
  readonly requests: number;
  readonly retries: number;
  /** samples in the shards written */
  readonly samples: number;
  readonly shards: number;
  /** one line per finished image left out of the shards (its file is gone or changed) */
  readonly leftOut: readonly string[];
}

interface Item extends InputFile {
  readonly key: string;
  /** null when the file could not be read */
  readonly sha256: string | null;
}

interface Part {
  readonly id: PartId;
  readonly box: Box | null;
}

interface Loaded {
  readonly image: RgbImage;
  readonly ext: ImageExt;
  readonly sha256: string;
}

function sameBox(a: Box | null, b: Box | null): boolean {
  return a === null || b === null ? a === b : a.every((v, i) => v === b[i]);
}

/** Captions one image at a time (several run at once), counting outcomes. */
class ImageCaptioner {
  captioned = 0;
  failed = 0;
  skipped = 0;

  constructor(
    private readonly options: CaptionRunOptions,
    private readonly log: ProgressLog,
    private readonly client: VisionClient,
    private readonly limiter: Limiter,
    private readonly signal: AbortSignal,
  ) {}

  /** Resolves once the image is done, failed, skipped or interrupted; throws only on a bug or a log write error. */
  async caption(item: Item): Promise<void> {
    const loaded = await this.load(item);
    if (typeof loaded === 'string') return this.report(item, 'skipped', loaded);
    const { image, ext } = loaded;
    const o = this.options;
    const regions = proposeRegions(image, { maxRegions: o.regions }).map((r) => expandBox(r.box, o.margin, image.width, image.height));
    const parts: Part[] = [{ id: 'global', box: null }, ...regions.map((box, i) => ({ id: i, box }))];
    const earlier = this.log.captionsOf(item.key, loaded.sha256);
    const texts = new Map<PartId, string>();
    const pending: { part: Part; url: string }[] = [];
    for (const part of parts) {
      const record = earlier.get(part.id);
      if (record !== undefined && sameBox(record.box, part.box)) texts.set(part.id, record.text);
      else pending.push({ part, url: await imageDataUrl(part.box === null ? image : cropImage(image, part.box), o.cropSize, o.cropFormat) });
    }

    const results = await Promise.allSettled(pending.map(({ part, url }) => this.request(item, loaded.sha256, part, url, texts)));
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    const interrupted = (e: unknown): boolean => this.signal.aborted && e === this.signal.reason;
    const bug = errors.find((e) => !(e instanceof RequestFailed) && !interrupted(e));
    if (bug !== undefined) throw bug;
    // an interrupted image is neither failed nor finished: the next run completes it
    if (errors.some(interrupted)) return;
    const failure = errors.find((e): e is RequestFailed => e instanceof RequestFailed);
    if (failure !== undefined) return this.report(item, 'failed', failure.message);

    const annotation = { text: regions.map((_, i) => texts.get(i)!), box: regions, global_text: texts.get('global')!, type: 'caption' as const };
    await this.log.addDone({ key: item.key, file: item.file, sha256: loaded.sha256, ext, annotation });
    this.report(item, 'captioned');
  }

  private async request(item: Item, sha: string, part: Part, url: string, texts: Map<PartId, string>): Promise<void> {
    const prompt = part.box === null ? GLOBAL_PROMPT : REGION_PROMPT;
    const text = await this.limiter.run(() => this.client.describe(prompt, url, this.signal));
    texts.set(part.id, text);
    await this.log.addCaption({ key: item.key, file: item.file, sha256: sha, part: part.id, box: part.box, text });
  }

  /** The decoded image, or why it cannot be captioned. */
  private async load(item: Item): Promise<Loaded | string> {
    let bytes: Buffer;
    try {
      bytes = await readFile(item.path);
    } catch (e) {
      return `cannot read the file (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
    }
    const ext = sniffFormat(bytes);
    if (ext === null) return 'not a JPEG, PNG or WebP file by its contents (the formats the shards hold)';
    try {
      return { image: await decodeImage(bytes, { name: item.file }), ext, sha256: sha256(bytes) };
    } catch (e) {
      if (isUserError(e)) return e.message.replace(`${item.file}: `, '');
      throw e;
    }
  }

  private report(item: Item, outcome: ImageOutcome, message?: string): void {
    this[outcome]++;
    this.options.onEvent?.({
      type: 'image',
      file: item.file,
      key: item.key,
      outcome,
      ...(message === undefined ? {} : { message }),
      requests: this.client.requests,
      retries: this.client.retries,
    });
  }
}

function settingsOf(o: CaptionRunOptions): CaptionSettings {
  return {
    model: o.model,
    regionPrompt: REGION_PROMPT,
    globalPrompt: GLOBAL_PROMPT,
    method: PROPOSAL_METHOD,
    regions: o.regions,
    cropSize: o.cropSize,
    margin: o.margin,
    cropFormat: o.cropFormat,
    maxTokens: o.maxTokens,
  };
}

/** Checks of what a programmer passes; the CLI reports the user's values before this. */
function checkOptions(o: CaptionRunOptions): void {
  const whole = (name: string, v: number, min: number): void => {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`captionImages: ${name} must be a whole number >= ${min}, got ${v}`);
  };
  whole('regions', o.regions, 0);
  whole('cropSize', o.cropSize, 1);
  whole('concurrency', o.concurrency, 1);
  whole('perShard', o.perShard, 1);
  whole('retries', o.retries, 0);
  whole('maxTokens', o.maxTokens, 1);
  whole('timeoutMs', o.timeoutMs, 1);
  if (!(o.margin >= 0 && o.margin <= 1)) throw new RangeError(`captionImages: margin must be in [0, 1], got ${o.margin}`);
}

/**
 * `task` over `items`, `workers` at a time, until all are done or `stop` aborts. A task that
 * throws aborts `stop` (so the others wind down) and its error is rethrown at the end.
 */
async function forEachUntilStopped<T>(items: readonly T[], workers: number, stop: AbortController, task: (item: T) => Promise<void>): Promise<void> {
  const fatal: unknown[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (!stop.signal.aborted && next < items.length) {
      try {
        await task(items[next++]!);
      } catch (e) {
        fatal.push(e);
        stop.abort(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, items.length) }, worker));
  if (fatal.length > 0) throw fatal[0];
}

/** Runs (or resumes) captioning of `options.images` into `options.out`; see the module comment. */
export async function captionImages(options: CaptionRunOptions): Promise<CaptionSummary> {
  checkOptions(options);
  const client = new VisionClient(options);
  const out = path.resolve(options.out);
  const { files, ignored } = await listImages(path.resolve(options.images), out);
  if (files.length === 0) throw new UserError(`${options.images}: no .jpg, .jpeg, .png or .webp files${ignored > 0 ? ` (${ignored} other files)` : ''}`);
  await mkdir(out, { recursive: true });
  if (!existsSync(path.join(out, PROGRESS_FILE))) {
    const foreign = await existingShards(out);
    if (foreign.length > 0) throw new UserError(`--out: ${options.out} already holds shards not written by "data caption" (${foreign[0]}); choose a new folder`);
  }

  const log = await ProgressLog.open(out, settingsOf(options));
  try {
    const keys = assignKeys(files.map((f) => f.file), (f) => log.keyOf(f));
    const items: Item[] = [];
    for (const f of files) items.push({ ...f, key: keys.get(f.file)!, sha256: await hashFile(f.path) });
    const todo = items.filter((i) => i.sha256 === null || log.finished(i.key, i.sha256) === undefined);
    options.onEvent?.({ type: 'start', images: items.length, earlier: items.length - todo.length, ignored, url: client.url });

    // our own signal: the caller's abort, or a fatal error in one worker, stops every worker
    const stop = new AbortController();
    const onAbort = (): void => stop.abort(options.signal?.reason);
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const captioner = new ImageCaptioner(options, log, client, new Limiter(options.concurrency), stop.signal);
    try {
      await forEachUntilStopped(todo, options.concurrency, stop, (item) => captioner.caption(item));
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }

    const samples = items.flatMap((item): OutputSample[] => {
      const done = log.latestDone(item.key);
      return done === undefined ? [] : [{ key: item.key, path: item.path, sha256: done.sha256, ext: done.ext, annotation: done.annotation }];
    });
    const written = await writeOutputShards(out, samples, options.perShard);
    return {
      images: items.length,
      earlier: items.length - todo.length,
      captioned: captioner.captioned,
      skipped: captioner.skipped,
      failed: captioner.failed,
      interrupted: stop.signal.aborted,
      requests: client.requests,
      retries: client.retries,
      samples: written.samples,
      shards: written.shards,
      leftOut: written.problems,
    };
  } finally {
    await log.close();
  }
}
