/**
 * What the server and queue tests share: a small model folder, images, the `ps3` command as a
 * child process, loopback HTTP with a bounded connection pool, and Redis from Debian's
 * `redis-server` on a free port with a temp folder.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import sharp from 'sharp';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { randomModel } from '../../src/model/load.js';
import { PRESETS } from '../../src/model/presets.js';
import { parseConfig } from '../../src/io/config.js';
import { readSafetensors, writeSafetensors, type NamedArray } from '../../src/io/safetensors.js';

export const CLI = path.resolve('dist/src/cli/main.js');
const TOKENIZER = path.resolve('test/data/tokenizers/siglip-unigram');

/**
 * The `micro` preset without its shallow ConvNeXt selection features (the one part that costs
 * ~1 s an image on a busy 2-core machine), random weights, and a tokenizer: hundreds of
 * requests fit in seconds.
 */
export async function writeModelDir(dir: string): Promise<void> {
  await initEngine();
  const json = structuredClone(PRESETS['micro']!.config) as { vision_config: Record<string, unknown> };
  json.vision_config['highres_selection_feature'] = false;
  const model = randomModel(parseConfig(json, 'test config'), 1);
  const arrays = new Map<string, NamedArray>();
  for (const [k, t] of model.weights.entries()) arrays.set(k, { shape: t.shape, data: t.dataSync() as Float32Array });
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), arrays);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(json));
  for (const f of fs.readdirSync(TOKENIZER)) fs.copyFileSync(path.join(TOKENIZER, f), path.join(dir, f));
  model.weights.dispose();
  tf.disposeVariables();
}

/** `count` small PNGs of different colours and sizes, named img00.png ... */
export async function writeImages(dir: string, count: number): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const f = path.join(dir, `img${String(i).padStart(2, '0')}.png`);
    const background = { r: (i * 53) % 256, g: (i * 97 + 40) % 256, b: (i * 31 + 90) % 256 };
    const square = await sharp({ create: { width: 24 + (i % 5) * 8, height: 24, channels: 3, background: { r: 255 - background.r, g: 255 - background.g, b: 20 } } }).png().toBuffer();
    await sharp({ create: { width: 96 + (i % 7) * 16, height: 80 + (i % 3) * 16, channels: 3, background } })
      .composite([{ input: square, left: (i * 7) % 50, top: (i * 11) % 40 }])
      .png()
      .toFile(f);
    files.push(f);
  }
  return files;
}

/** `ps3 encode` of a folder, once, in its own process: the reference outputs, by image base name. */
export function encodeWithCli(imagesDir: string, modelDir: string, outDir: string): Map<string, Map<string, NamedArray>> {
  const r = spawnSync(process.execPath, [CLI, 'encode', imagesDir, '--model', modelDir, '--out', outDir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ps3 encode failed: ${r.stderr}`);
  const out = new Map<string, Map<string, NamedArray>>();
  for (const f of fs.readdirSync(outDir).filter((f) => f.endsWith('.safetensors'))) out.set(path.basename(f, '.safetensors'), readSafetensors(path.join(outDir, f)));
  return out;
}

export interface Child {
  readonly proc: ChildProcess;
  /** everything it wrote to stdout so far */
  stdout(): string;
  stderr(): string;
  /** resolves with the exit code when it ends */
  readonly exited: Promise<number | null>;
}

export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, stdout: () => out, stderr: () => err, exited };
}

/** Wait until `test` holds (polling), or fail after `ms`. */
export async function waitFor<T>(what: string, test: () => T | undefined | Promise<T | undefined>, ms = 120000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await test();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `ps3 serve` on a free loopback port; resolves when it listens. */
export async function startServer(args: string[]): Promise<Child & { url: string }> {
  const child = startCli(['serve', '--port', '0', ...args]);
  const url = await waitFor(`the server to listen (${child.stderr()})`, () => {
    if (child.proc.exitCode !== null) throw new Error(`ps3 serve exited: ${child.stderr()}`);
    return /listening on (http:\/\/\S+)/.exec(child.stdout())?.[1];
  }, 180000);
  return { ...child, url };
}

export interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One request over `agent` (bounded pool of keep-alive connections). */
export function request(url: string, options: { method?: string; body?: Buffer | string; headers?: Record<string, string>; agent?: http.Agent; signal?: AbortSignal } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'POST', headers: options.headers, agent: options.agent, signal: options.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export function json<T>(a: Answer): T {
  return JSON.parse(a.body.toString()) as T;
}

/** A multipart/form-data body with the file field `image` and text fields. */
export function multipartBody(image: Buffer, fields: Array<[string, string]> = []): { body: Buffer; type: string } {
  const boundary = `----ps3test${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [k, v] of fields) parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="x.png"\r\ncontent-type: image/png\r\n\r\n`), image, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Debian's redis-server on a free loopback port, data (append-only file on) in `dir`. */
export class Redis {
  private proc: ChildProcess | undefined;
  private constructor(readonly port: number, readonly dir: string) {}

  static async start(dir: string): Promise<Redis> {
    fs.mkdirSync(dir, { recursive: true });
    const r = new Redis(await freePort(), dir);
    await r.up();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    const proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--protected-mode', 'yes'], { stdio: 'ignore' });
    this.proc = proc;
    await waitFor('redis-server to accept connections', () => {
      if (proc.exitCode !== null) throw new Error('redis-server exited at start');
      return new Promise<boolean | undefined>((resolve) => {
        const s = net.connect(this.port, '127.0.0.1');
        s.once('connect', () => {
          s.end('PING\r\n');
          resolve(true);
        });
        s.once('error', () => resolve(undefined));
      });
    });
  }

  /** SIGTERM: redis flushes the append-only file and exits. */
  async down(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const done = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await done;
  }
}
