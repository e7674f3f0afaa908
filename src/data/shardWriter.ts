/**
 * Webdataset shard writer: samples go, in the order given, into `DIR/shard-000000.tar`,
 * `shard-000001.tar`, ... with `perShard` samples each, or, when the total is known, spread
 * evenly over as few shards as `perShard` allows (7 at 3 a shard: 3/2/2, not 3/3/1; a reader
 * that takes whole shards per worker, or resamples shards, then sees every sample about as
 * often); a sample is one entry per file,
 * `KEY.EXT`. Headers carry nothing that varies between runs (mtime 0, uid/gid 0, no user or group
 * names, mode 0644) and a sample's files go in sorted extension order, so the same samples give
 * the same bytes.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pack as tarPack, type Pack } from 'tar-stream';

export interface ShardFile {
  /** extension without the dot: the entry is named KEY.EXT */
  readonly ext: string;
  readonly data: Uint8Array;
}

export interface ShardSet {
  /** paths of the shards written, in order */
  readonly shards: string[];
  /** their total size on disk */
  readonly bytes: number;
}

const EPOCH = new Date(0);

export function shardName(index: number): string {
  return `shard-${String(index).padStart(6, '0')}.tar`;
}

interface OpenShard {
  readonly pack: Pack;
  /** settles when the file is closed (or the pack or file fails) */
  readonly closed: Promise<void>;
}

/**
 * Samples per shard when `total` samples are spread over ceil(total / perShard) shards: sizes
 * differ by at most one, the larger ones first.
 */
export function evenShardSizes(total: number, perShard: number): number[] {
  const shards = Math.ceil(total / perShard);
  const base = Math.floor(total / shards);
  return Array.from({ length: shards }, (_, i) => base + (i < total % shards ? 1 : 0));
}

export class ShardWriter {
  private current: OpenShard | null = null;
  private inShard = 0;
  private readonly shards: string[] = [];
  /** samples written so far */
  samples = 0;

  /** samples per shard, in order, when the total was given */
  private readonly sizes: number[] | null;

  constructor(
    private readonly dir: string,
    private readonly perShard: number,
    options: { readonly total?: number } = {},
  ) {
    if (!Number.isInteger(perShard) || perShard < 1) throw new RangeError(`ShardWriter: perShard must be a positive integer, got ${perShard}`);
    const { total } = options;
    if (total !== undefined && !(Number.isInteger(total) && total >= 0)) throw new RangeError(`ShardWriter: total must be a non-negative integer, got ${total}`);
    this.sizes = total === undefined || total === 0 ? null : evenShardSizes(total, perShard);
  }

  /** How many samples the shard now open takes. */
  private capacity(): number {
    return this.sizes?.[this.shards.length - 1] ?? this.perShard;
  }

  /** Appends one sample; resolves once the tar stream has taken it (back-pressure included). */
  async write(key: string, files: readonly ShardFile[]): Promise<void> {
    if (this.current !== null && this.inShard >= this.capacity()) await this.finishShard();
    const shard = this.current ?? this.openShard();
    for (const file of [...files].sort((a, b) => (a.ext < b.ext ? -1 : a.ext > b.ext ? 1 : 0))) {
      const data = Buffer.from(file.data.buffer, file.data.byteOffset, file.data.byteLength);
      const header = { name: `${key}.${file.ext}`, size: data.byteLength, mtime: EPOCH, mode: 0o644, uid: 0, gid: 0, type: 'file' as const };
      await new Promise<void>((resolve, reject) => {
        shard.pack.entry(header, data, (err) => (err ? reject(err) : resolve()));
      });
    }
    this.inShard++;
    this.samples++;
  }

  /** Ends the last shard and reports every shard written. */
  async close(): Promise<ShardSet> {
    await this.finishShard();
    let bytes = 0;
    for (const path of this.shards) bytes += (await stat(path)).size;
    return { shards: [...this.shards], bytes };
  }

  private openShard(): OpenShard {
    const path = join(this.dir, shardName(this.shards.length));
    const pack = tarPack();
    const file: WriteStream = createWriteStream(path);
    const closed = new Promise<void>((resolve, reject) => {
      file.on('close', resolve);
      file.on('error', reject);
      pack.on('error', reject);
    });
    // a failure shows up when the shard is finished; until then it must not go unhandled
    closed.catch(() => undefined);
    // and a file that fails stops the pack, so a write waiting on back-pressure fails too
    file.on('error', (e) => pack.destroy(e));
    pack.pipe(file);
    this.shards.push(path);
    this.current = { pack, closed };
    this.inShard = 0;
    return this.current;
  }

  private async finishShard(): Promise<void> {
    if (this.current === null) return;
    const { pack, closed } = this.current;
    this.current = null;
    pack.finalize();
    await closed;
  }
}
