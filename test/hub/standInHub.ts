/**
 * A local HTTP server that speaks the Hub endpoints the client uses, for tests (no network):
 *   GET  /api/models/{org}/{name}/revision/{rev}   {id, sha, siblings}
 *   HEAD/GET /{org}/{name}/resolve/{rev}/{file}     small files: 200 with ETag = git blob SHA-1;
 *        *.safetensors (LFS): 302 to /cdn/{sha256} with X-Linked-Etag / X-Linked-Size
 *   GET  /cdn/{sha256}                              the bytes, with Range
 * X-Repo-Commit on every resolve; 401 for a private repo without its token; 404 with
 * X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound. Hooks cut a download after N bytes
 * or serve wrong bytes, and every request is logged.
 */
import http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface StandInRepo {
  /** commit sha -> files */
  readonly commits: Map<string, Map<string, Uint8Array>>;
  /** branch or tag -> commit sha */
  readonly refs: Map<string, string>;
  /** when set, requests must carry `Authorization: Bearer <token>` */
  readonly token?: string;
}

export interface Hooks {
  /** cut the connection after sending this many bytes of the blob with this SHA-256, `times` times */
  cut?: { sha256: string; after: number; times: number };
  /** serve these bytes instead of the blob with this SHA-256 */
  corrupt?: { sha256: string; bytes: Uint8Array };
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function gitBlobSha1(bytes: Uint8Array): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

/** A fake 40-hex commit sha from a label. */
export function commitSha(label: string): string {
  return createHash('sha1').update(label).digest('hex');
}

const isLfs = (file: string): boolean => file.endsWith('.safetensors');

export class StandInHub {
  readonly log: string[] = [];
  hooks: Hooks = {};
  private server: http.Server | undefined;
  private readonly blobs = new Map<string, Uint8Array>();
  endpoint = '';

  constructor(readonly repos: Map<string, StandInRepo>) {
    for (const repo of repos.values()) for (const files of repo.commits.values()) for (const bytes of files.values()) this.blobs.set(sha256(bytes), bytes);
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.endpoint;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  private fail(res: http.ServerResponse, status: number, code?: string): void {
    res.writeHead(status, code ? { 'x-error-code': code, 'content-type': 'application/json' } : { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: code ?? `HTTP ${status}` }));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.endpoint);
    const path = decodeURIComponent(url.pathname);
    this.log.push(`${req.method} ${path}${req.headers.range ? ` ${req.headers.range}` : ''}`);
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdn) return this.serveBlob(req, res, cdn[1]!);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repoName = api?.[1] ?? resolve?.[1];
    if (repoName === undefined) return this.fail(res, 404);
    const repo = this.repos.get(repoName);
    if (!repo) return this.fail(res, 404, 'RepoNotFound');
    if (repo.token !== undefined && req.headers.authorization !== `Bearer ${repo.token}`) return this.fail(res, 401);
    const revision = (api?.[2] ?? resolve?.[2])!;
    const commit = repo.commits.has(revision) ? revision : repo.refs.get(revision);
    const files = commit !== undefined ? repo.commits.get(commit) : undefined;
    if (commit === undefined || files === undefined) return this.fail(res, 404, 'RevisionNotFound');
    if (api) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: repoName, sha: commit, siblings: [...files.keys()].map((rfilename) => ({ rfilename })) }));
      return;
    }
    const file = resolve![3]!;
    const bytes = files.get(file);
    if (!bytes) return this.fail(res, 404, 'EntryNotFound');
    if (isLfs(file)) {
      const sha = sha256(bytes);
      res.writeHead(302, {
        location: `${this.endpoint}/cdn/${sha}`,
        'x-repo-commit': commit,
        'x-linked-etag': `"${sha}"`,
        'x-linked-size': String(bytes.length),
        etag: `"${gitBlobSha1(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\nsize ${bytes.length}\n`))}"`,
      });
      res.end();
      return;
    }
    res.writeHead(200, { 'x-repo-commit': commit, etag: `"${gitBlobSha1(bytes)}"`, 'content-length': String(bytes.length) });
    res.end(req.method === 'HEAD' ? undefined : Buffer.from(bytes));
  }

  private serveBlob(req: http.IncomingMessage, res: http.ServerResponse, sha: string): void {
    let bytes = this.blobs.get(sha);
    if (!bytes) return this.fail(res, 404);
    if (this.hooks.corrupt?.sha256 === sha) bytes = this.hooks.corrupt.bytes;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start > bytes.length) {
      res.writeHead(416, { 'content-range': `bytes */${bytes.length}` });
      res.end();
      return;
    }
    const body = Buffer.from(bytes.subarray(start));
    res.writeHead(range ? 206 : 200, {
      'content-length': String(body.length),
      ...(range ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    if (req.method === 'HEAD') return void res.end();
    const cut = this.hooks.cut;
    if (cut && cut.sha256 === sha && cut.times > 0 && cut.after < body.length) {
      cut.times--;
      // the break comes a moment after the bytes, as on a real network: a fetch body errored while
      // its chunks still wait in the stream's queue drops them (WHATWG streams clear the queue on
      // error), so an immediate break on a loaded machine could leave the client nothing to keep
      res.write(body.subarray(0, cut.after), () => setTimeout(() => res.destroy(), 100));
      return;
    }
    res.end(body);
  }
}
