// Serve the browser page (web/dist/) on localhost, building it first.
//
// Usage: node web/serve.mjs [--port N] [--host H] [--model DIR | --random] [--dist DIR] [--no-build]
//   --port N     port (default: $PORT, else 8080; 0 picks a free one)
//   --host H     address to listen on (default 127.0.0.1)
//   --model DIR  the model folder served at /model/ (config.json, model.safetensors, tokenizer
//                files), which the page loads by default; default: the shipped models/ps3-tiny
//   --random     serve no model: the page runs a preset with random weights
//   --dist DIR   where the built page is (default web/dist/)
//   --no-build   serve the built page as it is
//
// The page is served cross-origin isolated (COOP/COEP headers), which lets TensorFlow.js's WASM
// backend use threads. The first line printed is the URL (tests read it).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const webDir = path.dirname(fileURLToPath(import.meta.url));
const defaultDistDir = path.join(webDir, 'dist');
const shippedModel = path.join(webDir, '..', 'models', 'ps3-tiny');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.safetensors': 'application/octet-stream',
};

function usage(message) {
  console.error(`serve: ${message}\nusage: node web/serve.mjs [--port N] [--host H] [--model DIR] [--dist DIR] [--no-build]`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { port: process.env.PORT ?? '8080', host: '127.0.0.1', model: undefined, random: false, dist: defaultDistDir, build: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--port') o.port = value();
    else if (a.startsWith('--port=')) o.port = a.slice(7);
    else if (a === '--host') o.host = value();
    else if (a === '--model') o.model = value();
    else if (a.startsWith('--model=')) o.model = a.slice(8);
    else if (a === '--dist') o.dist = path.resolve(value());
    else if (a === '--no-build') o.build = false;
    else if (a === '--random') o.random = true;
    else if (a === '--help' || a === '-h') usage('serves the PS3 page');
    else usage(`unknown argument "${a}"`);
  }
  if (!/^\d+$/.test(String(o.port)) || Number(o.port) > 65535) usage(`port must be an integer 0-65535, got "${o.port}"`);
  o.port = Number(o.port);
  if (o.random && o.model !== undefined) usage('give --model DIR or --random, not both');
  if (!o.random && o.model === undefined) o.model = shippedModel;
  return o;
}

/** The file under `dir` that a URL path names, or null if it would leave `dir`. */
function within(dir, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  const file = path.resolve(dir, `.${path.posix.normalize(`/${decoded}`)}`);
  return file === dir || file.startsWith(dir + path.sep) ? file : null;
}

async function sendFile(req, res, file) {
  let info;
  try {
    info = await stat(file);
    if (info.isDirectory()) {
      file = path.join(file, 'index.html');
      info = await stat(file);
    }
  } catch {
    return send(res, 404, 'not found');
  }
  res.writeHead(200, {
    'Content-Type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'Content-Length': info.size,
    'Cache-Control': 'no-cache',
  });
  if (req.method === 'HEAD') return res.end();
  createReadStream(file).pipe(res);
}

function send(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`${text}\n`);
}

export async function startServer({ port = 8080, host = '127.0.0.1', model, dist = defaultDistDir } = {}) {
  const distDir = path.resolve(dist);
  const modelDir = model === undefined ? undefined : path.resolve(model);
  if (modelDir !== undefined) {
    const s = await stat(modelDir).catch(() => null);
    if (!s?.isDirectory()) throw new Error(`${model}: model folder not found`);
  }
  const server = http.createServer((req, res) => {
    // cross-origin isolation: SharedArrayBuffer, so the WASM backend may use threads
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed');
    const { pathname } = new URL(req.url ?? '/', 'http://localhost');
    const file = modelDir !== undefined && (pathname === '/model' || pathname.startsWith('/model/'))
      ? within(modelDir, pathname.slice('/model'.length) || '/')
      : within(distDir, pathname);
    if (file === null) return send(res, 400, 'bad path');
    if (file === modelDir) return send(res, 404, 'not found');
    void sendFile(req, res, file);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  const shownHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${address.port}/${modelDir !== undefined ? '?model=/model/' : ''}`;
  return { server, url, port: address.port };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const o = parseArgs(process.argv.slice(2));
  try {
    if (o.build) {
      const { buildPage } = await import('./build.mjs');
      await buildPage({ quiet: true, outDir: o.dist });
    } else {
      await stat(path.join(o.dist, 'index.html')).catch(() => {
        throw new Error(`${o.dist} has no page: run without --no-build, or node web/build.mjs`);
      });
    }
    const { url } = await startServer(o);
    console.log(url);
    console.log(`serving ${path.relative(process.cwd(), o.dist) || '.'}${o.model ? ` and model folder ${o.model} at /model/` : ''}; Ctrl-C stops`);
  } catch (e) {
    const errors = e?.errors?.length ? e.errors.map((x) => x.text) : [e?.message ?? String(e)];
    for (const m of errors) console.error(`serve: ${m}`);
    process.exit(e?.code === 'EADDRINUSE' ? 2 : 1);
  }
}
