/**
 * `ps3 bench serve --preset NAME [--clients 1,4,16] [--requests N]`: start `ps3 serve` as a child
 * process on a free loopback port, then requests per second and p50 / p99 latency of
 * `POST /v1/encode` at each number of concurrent clients (closed loop, keep-alive).
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { runLoad, type LoadResult } from '../serve/load.js';
import { positiveInt } from './inputs.js';

export interface BenchServeOptions {
  backend?: string;
  preset?: string;
  model?: string;
  image?: string;
  clients: string;
  requests: string;
  looks: string;
  trunk?: string;
  json?: boolean;
}

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const SAMPLE = fileURLToPath(new URL('../../../assets/sample-4k.jpg', import.meta.url));

export function parseCounts(name: string, list: string): number[] {
  const counts = list.split(',').map((v) => positiveInt(name, v.trim())!);
  if (counts.some((c) => c < 1)) throw new UserError(`--${name} must list positive integers, got "${list}"`);
  return counts;
}

export async function benchServeCommand(o: BenchServeOptions): Promise<number> {
  if (!o.preset && !o.model) throw new UserError('give --preset NAME (random weights) or --model DIR');
  const levels = parseCounts('clients', o.clients);
  const requests = positiveInt('requests', o.requests)!;
  const looks = positiveInt('looks', o.looks)!;
  const image = o.image ?? SAMPLE;
  if (!fs.existsSync(image)) throw new UserError(`${image}: no such file`);
  const body = fs.readFileSync(image);
  const type = /\.jpe?g$/i.test(image) ? 'image/jpeg' : 'application/octet-stream';

  const args = [MAIN, ...(o.backend ? ['--backend', o.backend] : []), 'serve', '--port', '0', '--max-queue', String(Math.max(...levels) * 2), ...(o.preset ? ['--preset', o.preset] : ['--model', o.model!]), ...(o.trunk ? ['--trunk', o.trunk] : [])];
  const server = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => server.once('exit', r));
  try {
    const base = await new Promise<string>((resolve, reject) => {
      let text = '';
      server.stdout!.on('data', (d: Buffer) => {
        text += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(text);
        if (m) resolve(m[1]!);
      });
      server.once('exit', (code) => reject(new UserError(`ps3 serve exited (${code}) before listening`)));
    });
    const url = `${base}/v1/encode?looks=${looks}`;
    process.stderr.write(`bench serve: ${o.preset ?? o.model}, ${path.basename(image)}, ${requests} request(s) per level; warming up\n`);
    await runLoad(url, body, type, 1, 2);
    const results: LoadResult[] = [];
    for (const clients of levels) {
      const r = await runLoad(url, body, type, clients, Math.max(requests, clients));
      results.push(r);
      process.stdout.write(`clients ${String(clients).padStart(3)}  ${r.requestsPerSecond.toFixed(2).padStart(7)} req/s  p50 ${r.p50Ms.toFixed(0).padStart(6)} ms  p99 ${r.p99Ms.toFixed(0).padStart(6)} ms  ok ${r.ok}/${r.requests}${Object.keys(r.others).length ? `  others ${JSON.stringify(r.others)}` : ''}\n`);
    }
    const report = { preset: o.preset ?? null, model: o.model ?? null, image, looks, trunk: o.trunk ?? 'tfjs', results };
    if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    return 0;
  } finally {
    server.kill('SIGTERM');
    await exited;
  }
}
