/**
 * The Hub's HTTP protocol, as huggingface_hub speaks it:
 *   GET  {endpoint}/api/models/{repo}/revision/{revision}   -> { sha, siblings: [{ rfilename }] }
 *   HEAD {endpoint}/{repo}/resolve/{commit}/{file}         -> X-Repo-Commit, ETag or X-Linked-Etag
 *        (the SHA-256 of an LFS file), X-Linked-Size or Content-Length, and for large files a
 *        redirect (Location) to where the bytes are
 *   GET  that location, with `Range: bytes=N-` to resume
 * Failures become one-line UserErrors naming the repo, the revision or the file.
 */
import { createReadStream, createWriteStream, existsSync, rmSync, statSync, truncateSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { UserError } from '../errors.js';
import type { HubSettings } from './settings.js';

export interface RevisionInfo {
  readonly commit: string;
  readonly files: ReadonlySet<string>;
}

export interface FileMeta {
  readonly etag: string;
  readonly size: number;
  /** where the bytes are (the redirect target for large files) */
  readonly url: string;
  readonly commit: string | undefined;
}

/** How long metadata requests may take (huggingface_hub's HF_HUB_ETAG_TIMEOUT default). */
const METADATA_TIMEOUT_MS = 10_000;
/** Automatic resumptions of one file within a run before giving up. */
const DOWNLOAD_ATTEMPTS = 4;

function quotePath(p: string): string {
  return p.split('/').map(encodeURIComponent).join('/');
}

function errorCause(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message;
  if (e instanceof Error && e.name === 'TimeoutError') return 'timed out';
  return e instanceof Error ? e.message : String(e);
}

/** Strips quotes and a weak-validator prefix, as huggingface_hub's `_normalize_etag` does. */
function normalizeEtag(v: string | null): string | undefined {
  if (v === null) return undefined;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '');
}

export class HubClient {
  constructor(
    private readonly settings: HubSettings,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  private headers(url: string, extra: Record<string, string> = {}): Record<string, string> {
    // the token goes to the Hub itself, never to the storage a download is redirected to
    const sameOrigin = new URL(url).origin === new URL(this.settings.endpoint).origin;
    return { 'user-agent': 'ps3-ts', ...(this.settings.token && sameOrigin ? { authorization: `Bearer ${this.settings.token}` } : {}), ...extra };
  }

  private async request(url: string, init: RequestInit, what: string): Promise<Response> {
    try {
      return await this.fetchImpl(url, { ...init, headers: this.headers(url, init.headers as Record<string, string> | undefined) });
    } catch (e) {
      throw new UserError(`${what}: cannot reach ${new URL(url).origin} (${errorCause(e)}); set HF_HUB_OFFLINE=1 to use only the cache`);
    }
  }

  private failure(res: Response, repo: string, revision: string, file?: string): UserError {
    const code = res.headers.get('x-error-code');
    const where = `${repo}@${revision}`;
    if (code === 'RepoNotFound' || (res.status === 404 && file === undefined && code === null)) {
      return new UserError(`${repo}: no such model on ${this.settings.endpoint} (HTTP ${res.status}; if it is private, set HF_TOKEN)`);
    }
    if (code === 'RevisionNotFound') return new UserError(`${repo}: no revision "${revision}" (HTTP ${res.status})`);
    if (code === 'EntryNotFound' || res.status === 404) return new UserError(`${where}: no file ${file ?? ''} (HTTP ${res.status})`);
    if (code === 'GatedRepo') return new UserError(`${repo}: gated model (HTTP ${res.status}): accept its terms on the Hub and set HF_TOKEN`);
    if (res.status === 401) {
      const token = this.settings.token ? 'the token in HF_TOKEN was refused' : 'it needs a token: set HF_TOKEN';
      return new UserError(`${repo}: 401 Unauthorized from ${this.settings.endpoint} (${token})`);
    }
    if (res.status === 403) return new UserError(`${repo}: 403 Forbidden from ${this.settings.endpoint} (the token has no access to this model)`);
    return new UserError(`${where}${file ? ` ${file}` : ''}: HTTP ${res.status} from ${this.settings.endpoint}`);
  }

  /** The commit a revision (branch, tag or commit) names, and the files in it. */
  async revisionInfo(repo: string, revision: string): Promise<RevisionInfo> {
    const url = `${this.settings.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
    const res = await this.request(url, { signal: AbortSignal.timeout(METADATA_TIMEOUT_MS) }, `${repo}@${revision}`);
    if (!res.ok) throw this.failure(res, repo, revision);
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      throw new UserError(`${repo}@${revision}: the Hub's answer about the revision is not JSON`);
    }
    const b = body as { sha?: unknown; siblings?: unknown };
    if (typeof b.sha !== 'string' || !/^[0-9a-f]{40}$/.test(b.sha) || !Array.isArray(b.siblings)) {
      throw new UserError(`${repo}@${revision}: the Hub's answer about the revision has no commit sha or file list`);
    }
    const files = new Set<string>();
    for (const s of b.siblings as Array<{ rfilename?: unknown }>) if (typeof s.rfilename === 'string') files.add(s.rfilename);
    return { commit: b.sha, files };
  }

  /** ETag, size and download location of one file (HEAD, following only same-host redirects). */
  async fileMeta(repo: string, revision: string, file: string): Promise<FileMeta> {
    let url = `${this.settings.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${quotePath(file)}`;
    for (let hop = 0; hop < 5; hop++) {
      // identity: the size must be the file's, not a compressed transfer's
      const res = await this.request(url, { method: 'HEAD', redirect: 'manual', headers: { 'accept-encoding': 'identity' }, signal: AbortSignal.timeout(METADATA_TIMEOUT_MS) }, `${repo}@${revision} ${file}`);
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location !== null) {
        const next = new URL(location, url);
        // a relative redirect (a renamed repo) is followed; an absolute one is where the bytes are
        if (!/^https?:\/\//i.test(location) || next.origin === new URL(url).origin && next.pathname.includes('/resolve/')) {
          url = next.toString();
          continue;
        }
      } else if (!res.ok) {
        throw this.failure(res, repo, revision, file);
      }
      const etag = normalizeEtag(res.headers.get('x-linked-etag')) ?? normalizeEtag(res.headers.get('etag'));
      const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length'));
      if (etag === undefined || etag === '' || /[/\\]/.test(etag)) throw new UserError(`${repo}@${revision} ${file}: the Hub sent no usable ETag`);
      if (!Number.isSafeInteger(size) || size < 0) throw new UserError(`${repo}@${revision} ${file}: the Hub sent no file size`);
      return { etag, size, url: location !== null ? new URL(location, url).toString() : url, commit: res.headers.get('x-repo-commit') ?? undefined };
    }
    throw new UserError(`${repo}@${revision} ${file}: too many redirects`);
  }

  /**
   * Downloads `meta` into `incomplete`, resuming from what is already there (`Range`), and
   * retrying a broken connection a few times, each time from where it stopped.
   * `onBytes` is told of every chunk written.
   */
  async download(meta: FileMeta, incomplete: string, what: string, onBytes: (n: number) => void): Promise<void> {
    let lastError = '';
    for (let attempt = 0; attempt < DOWNLOAD_ATTEMPTS; attempt++) {
      let have = existsSync(incomplete) ? statSync(incomplete).size : 0;
      if (have > meta.size) {
        truncateSync(incomplete, 0);
        have = 0;
      }
      if (have === meta.size) return;
      const res = await this.request(meta.url, { headers: { 'accept-encoding': 'identity', ...(have > 0 ? { range: `bytes=${have}-` } : {}) } }, what);
      let append = false;
      if (res.status === 206) {
        const start = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
        append = start !== null && Number(start[1]) === have;
        if (!append) {
          await res.body?.cancel();
          truncateSync(incomplete, 0);
          continue;
        }
      } else if (res.status === 416) {
        // the range no longer fits the file: start over
        await res.body?.cancel();
        truncateSync(incomplete, 0);
        continue;
      } else if (!res.ok || res.body === null) {
        throw new UserError(`${what}: download failed (HTTP ${res.status})`);
      } else if (have > 0) {
        onBytes(-have); // the server ignored the range: the bytes kept so far are written again
      }
      const counter = async function* (source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
        for await (const chunk of source) {
          onBytes(chunk.length);
          yield chunk;
        }
      };
      const out = createWriteStream(incomplete, { flags: append ? 'a' : 'w' });
      try {
        await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), counter, out);
      } catch (e) {
        // a write already under way still lands: wait for it, so the next attempt starts from the true length
        if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
        lastError = errorCause(e);
        continue;
      }
      const got = statSync(incomplete).size;
      if (got === meta.size) return;
      lastError = `got ${got} of ${meta.size} bytes`;
      if (got > meta.size) truncateSync(incomplete, 0);
    }
    const kept = existsSync(incomplete) ? statSync(incomplete).size : 0;
    throw new UserError(`${what}: download interrupted (${lastError}) after ${kept} of ${meta.size} bytes; run again to resume`);
  }
}

/**
 * Checks a downloaded file against its ETag: the SHA-256 of LFS files (64 hex digits), the git
 * blob SHA-1 of the others (40 hex digits); other ETags are checked by size only.
 * Returns a reason when it does not match.
 */
export async function checkBlob(file: string, etag: string, size: number): Promise<string | undefined> {
  const got = statSync(file).size;
  if (got !== size) return `${got} bytes, expected ${size}`;
  let hash;
  if (/^[0-9a-f]{64}$/.test(etag)) hash = createHash('sha256');
  else if (/^[0-9a-f]{40}$/.test(etag)) hash = createHash('sha1').update(`blob ${size}\0`);
  else return undefined;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  const digest = hash.digest('hex');
  if (digest === etag) return undefined;
  return `${etag.length === 64 ? 'SHA-256' : 'git SHA-1'} ${digest} does not match the Hub's ${etag}`;
}

export function removeFile(file: string): void {
  rmSync(file, { force: true });
}
