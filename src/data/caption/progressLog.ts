/**
 * The record of a caption run, `DIR/.caption-progress.jsonl`: one JSON object per line, appended
 * as work finishes, so a run killed at any moment loses at most the requests then in flight.
 *
 * - `header` (first line): the settings that decide what a caption says. A later run must use
 *   the same ones, or captions of two kinds would mix in one data set.
 * - `caption`: one caption of one part of one image (`part` "global" or the region's index), with
 *   the box it describes; a re-run reuses it rather than asking again.
 * - `done`: an image whose every part is captioned, with its finished annotation; the shards are
 *   written from these.
 *
 * Entries name the image by key and by the SHA-256 of its bytes: an image whose file changed is
 * captioned afresh. The latest entry wins. A line cut short by a kill (no newline at the end) is
 * cut off when the log is opened; any other unreadable line is the user's to look at.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '../../errors.js';
import type { Box } from '../../io/shards.js';
import type { ImageExt } from './inputs.js';

export const PROGRESS_FILE = '.caption-progress.jsonl';

/** What decides a caption's content; recorded in the header. */
export interface CaptionSettings {
  readonly model: string;
  readonly regionPrompt: string;
  readonly globalPrompt: string;
  readonly method: string;
  readonly regions: number;
  readonly cropSize: number;
  readonly margin: number;
  readonly cropFormat: string;
  readonly maxTokens: number;
}

/** `KEY.json` as written to the annotation shards (the reference's field names). */
export interface AnnotationJson {
  readonly text: readonly string[];
  readonly box: readonly Box[];
  readonly global_text: string;
  readonly type: 'caption';
}

export type PartId = 'global' | number;

export interface CaptionRecord {
  readonly key: string;
  readonly file: string;
  readonly sha256: string;
  readonly part: PartId;
  /** the region captioned, original pixels; null for the whole image */
  readonly box: Box | null;
  readonly text: string;
}

export interface DoneRecord {
  readonly key: string;
  readonly file: string;
  readonly sha256: string;
  readonly ext: ImageExt;
  readonly annotation: AnnotationJson;
}

const int = z.number().int();
const box = z.tuple([int, int, int, int]);
const settingsSchema = z.object({
  model: z.string(),
  regionPrompt: z.string(),
  globalPrompt: z.string(),
  method: z.string(),
  regions: int,
  cropSize: int,
  margin: z.number(),
  cropFormat: z.string(),
  maxTokens: int,
});
const named = { key: z.string().min(1), file: z.string().min(1), sha256: z.string().regex(/^[0-9a-f]{64}$/) };
const entrySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('header'), version: z.literal(1), settings: settingsSchema }),
  z.object({ kind: z.literal('caption'), ...named, part: z.union([z.literal('global'), int.nonnegative()]), box: box.nullable(), text: z.string() }),
  z.object({
    kind: z.literal('done'),
    ...named,
    ext: z.enum(['jpg', 'png', 'webp']),
    annotation: z.object({ text: z.array(z.string()), box: z.array(box), global_text: z.string(), type: z.literal('caption') }),
  }),
]);

const identity = (key: string, sha: string): string => `${key}\n${sha}`;

export class ProgressLog {
  private readonly captions = new Map<string, Map<PartId, CaptionRecord>>();
  private readonly done = new Map<string, DoneRecord>();
  private readonly keys = new Map<string, string>();
  /** appends go one after another, so lines never interleave */
  private queue: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  /** Opens (or starts) the log in `dir`; refuses one written with other settings. */
  static async open(dir: string, settings: CaptionSettings): Promise<ProgressLog> {
    const file = path.join(dir, PROGRESS_FILE);
    const bytes = await readFile(file).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return Buffer.alloc(0);
      throw new UserError(`${file}: cannot read (${e.code ?? e.message})`);
    });
    const complete = bytes.lastIndexOf(0x0a) + 1;
    const handle = await open(file, 'a+');
    // a line a kill cut short would otherwise have the next entry glued to it
    if (complete < bytes.length) await handle.truncate(complete);
    const log = new ProgressLog(file, handle);
    try {
      const lines = bytes.subarray(0, complete).toString('utf8').split('\n').slice(0, -1);
      lines.forEach((line, i) => log.load(line, i + 1, settings));
      if (lines.length === 0) await log.append({ kind: 'header', version: 1, settings });
    } catch (e) {
      await handle.close();
      throw e;
    }
    return log;
  }

  /** The key `file` had in the latest entry naming it. */
  keyOf(file: string): string | undefined {
    return this.keys.get(file);
  }

  /** The finished annotation of this key and content, if any. */
  finished(key: string, sha256: string): DoneRecord | undefined {
    const record = this.done.get(key);
    return record?.sha256 === sha256 ? record : undefined;
  }

  /** The latest finished annotation of this key, whatever content it was made from. */
  latestDone(key: string): DoneRecord | undefined {
    return this.done.get(key);
  }

  /** Captions of this key and content, by part. */
  captionsOf(key: string, sha256: string): ReadonlyMap<PartId, CaptionRecord> {
    return this.captions.get(identity(key, sha256)) ?? new Map();
  }

  addCaption(record: CaptionRecord): Promise<void> {
    this.remember({ kind: 'caption', ...record });
    return this.append({ kind: 'caption', ...record });
  }

  addDone(record: DoneRecord): Promise<void> {
    this.remember({ kind: 'done', ...record });
    return this.append({ kind: 'done', ...record });
  }

  /** Waits for pending appends, then closes the file. */
  async close(): Promise<void> {
    await this.queue;
    await this.handle.close();
  }

  private load(line: string, number: number, settings: CaptionSettings): void {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new UserError(`${this.path} line ${number}: not JSON; fix or delete the file (deleting it means captioning again)`);
    }
    const parsed = entrySchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new UserError(`${this.path} line ${number}: not a progress entry (${issue.path.join('.') || '(root)'}: ${issue.message}); fix or delete the file`);
    }
    const entry = parsed.data;
    if ((entry.kind === 'header') !== (number === 1)) throw new UserError(`${this.path} line ${number}: the header must be the first line, and only there`);
    if (entry.kind === 'header') checkSettings(this.path, entry.settings, settings);
    else this.remember(entry);
  }

  private remember(entry: ({ kind: 'caption' } & CaptionRecord) | ({ kind: 'done' } & DoneRecord)): void {
    this.keys.set(entry.file, entry.key);
    if (entry.kind === 'done') {
      const { kind: _, ...record } = entry;
      this.done.set(entry.key, record);
      return;
    }
    const { kind: _, ...record } = entry;
    const id = identity(entry.key, entry.sha256);
    const parts = this.captions.get(id) ?? new Map<PartId, CaptionRecord>();
    parts.set(entry.part, record);
    this.captions.set(id, parts);
  }

  private append(entry: object): Promise<void> {
    // one write per line: with O_APPEND a line lands whole or, if the process dies, not at all
    const written = this.queue.then(() => this.handle.write(`${JSON.stringify(entry)}\n`)).then(() => undefined);
    this.queue = written.catch(() => undefined);
    return written;
  }
}

function checkSettings(file: string, earlier: CaptionSettings, now: CaptionSettings): void {
  for (const name of Object.keys(now) as (keyof CaptionSettings)[]) {
    if (earlier[name] !== now[name]) {
      throw new UserError(
        `${file}: this folder was captioned with ${name} ${JSON.stringify(earlier[name])}, not ${JSON.stringify(now[name])}; use the same settings or another --out`,
      );
    }
  }
}
