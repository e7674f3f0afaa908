// Build the browser page into web/dist/: bundle web/src/main.ts (and the library parts it uses)
// with esbuild, copy the HTML and CSS, the TensorFlow.js WASM binaries under wasm/, and
// onnxruntime-web's WASM runtime under ort/.
//
// The library is written for Node; the bundle swaps its Node-only pieces for browser ones:
//   src/tensor/engine.ts  -> src/tensor/engine.browser.ts  (backends without node:module/node:path)
//   src/engine/onnx/sessionOptions.ts -> sessionOptions.browser.ts  (the provider initOrt chose)
//   onnxruntime-node, onnxruntime-web -> onnxruntime-web's WebGPU build, its WASM loaded from ort/
//     (that build runs both the WebGPU and the WASM CPU providers from one .wasm: one runtime,
//     one download, whichever provider the page ends up on)
//   node:fs, node:fs/promises, node:path, sharp -> web/src/shims/ (fs/promises reads the page's
//     virtual folder, where the tokenizer files go; the rest throw if ever called)
// Any other Node built-in reached from this repository's code fails the build, naming the importer.
//
// Usage: node web/build.mjs [--dev] [--quiet] [--out DIR]   (--dev: no minification; default DIR web/dist)
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const webDir = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(webDir);
const defaultOutDir = path.join(webDir, 'dist');
const srcDir = path.join(root, 'src');
const shimDir = path.join(webDir, 'src', 'shims');

const SHIMS = {
  'node:fs': 'fs.ts',
  fs: 'fs.ts',
  'node:fs/promises': 'fsPromises.ts',
  'fs/promises': 'fsPromises.ts',
  'node:path': 'path.ts',
  path: 'path.ts',
  sharp: 'sharp.ts',
};

const NODE_BUILTIN = /^node:|^(assert|buffer|child_process|crypto|events|module|net|os|process|stream|url|util|worker_threads|zlib)(\/.*)?$/;

/** Same-named browser variants of library files: file -> its variant (both under src/). */
const VARIANTS = {
  'tensor/engine.js': 'tensor/engine.browser.ts',
  'engine/onnx/sessionOptions.js': 'engine/onnx/sessionOptions.browser.ts',
};

const require = createRequire(import.meta.url);
const ortDist = path.dirname(require.resolve('onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm'));
/** onnxruntime-web's WebGPU build without the WASM glue inlined: it loads that from `env.wasm.wasmPaths` */
const ORT_BUILD = path.join(ortDist, 'ort.webgpu.min.mjs');
/** what ORT_BUILD fetches at run time (the threaded SIMD build with asyncify, which the WebGPU provider needs) */
const ORT_FILES = ['ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm'];

const rel = (p) => path.relative(root, p);
const ours = (importer) => importer.startsWith(root + path.sep) && !importer.includes(`${path.sep}node_modules${path.sep}`);

/** Node-only imports of this repository's code, swapped or refused; every swap is recorded. */
function browserPlugin(swaps) {
  return {
    name: 'ps3-browser',
    setup(b) {
      b.onResolve({ filter: /(^|\/)(engine|sessionOptions)\.js$/ }, (args) => {
        if (!ours(args.importer)) return undefined;
        const target = path.relative(srcDir, path.resolve(args.resolveDir, args.path)).split(path.sep).join('/');
        const variant = VARIANTS[target];
        if (!variant) return undefined;
        swaps.push(`${rel(args.importer)}: ${args.path} -> src/${variant}`);
        return { path: path.join(srcDir, variant) };
      });
      b.onResolve({ filter: /^onnxruntime-(node|web)$/ }, (args) => {
        if (!ours(args.importer)) return undefined;
        swaps.push(`${rel(args.importer)}: ${args.path} -> onnxruntime-web (WebGPU + WASM build)`);
        return { path: ORT_BUILD };
      });
      b.onResolve({ filter: /.*/ }, (args) => {
        if (!args.importer || !ours(args.importer)) return undefined;
        const shim = SHIMS[args.path];
        if (shim) {
          swaps.push(`${rel(args.importer)}: ${args.path} -> web/src/shims/${shim}`);
          return { path: path.join(shimDir, shim) };
        }
        if (NODE_BUILTIN.test(args.path)) {
          return { errors: [{ text: `${rel(args.importer)} imports the Node-only module "${args.path}", which the browser page cannot use: give the page a browser variant (see web/build.mjs)` }] };
        }
        return undefined;
      });
    },
  };
}

/** 'importer: from -> to' lines grouped by swap: 'from -> to (importers)'. */
function condense(swaps) {
  const by = new Map();
  for (const s of swaps) {
    const [importer, swap] = s.split(': ');
    if (!by.has(swap)) by.set(swap, new Set());
    by.get(swap).add(importer);
  }
  return [...by].map(([swap, importers]) => `${swap}  (for ${[...importers].sort().join(', ')})`);
}

export async function buildPage({ dev = false, quiet = false, outDir = defaultOutDir } = {}) {
  outDir = path.resolve(outDir);
  const started = performance.now();
  // replace an earlier build, never anything else
  const existing = await readdir(outDir).catch(() => []);
  if (existing.length > 0 && !existing.includes('app.js') && !existing.includes('index.html')) {
    throw new Error(`${outDir} exists and does not look like a page build: refusing to replace it`);
  }
  await rm(outDir, { recursive: true, force: true });
  await mkdir(path.join(outDir, 'wasm'), { recursive: true });
  await mkdir(path.join(outDir, 'ort'), { recursive: true });
  const swaps = [];
  const result = await build({
    entryPoints: { app: path.join(webDir, 'src', 'main.ts') },
    bundle: true,
    format: 'esm',
    splitting: true, // the WebGPU backend and ONNX Runtime are chunks of their own, fetched only when used
    platform: 'browser',
    target: ['es2022', 'chrome113', 'firefox115', 'safari16'],
    outdir: outDir,
    minify: !dev,
    sourcemap: true,
    metafile: true,
    legalComments: 'linked',
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': dev ? '"development"' : '"production"' },
    plugins: [browserPlugin(swaps)],
  });
  for (const w of result.warnings) console.warn(`warning: ${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ''}`);

  // No Node-only library code may have slipped in.
  const inputs = Object.keys(result.metafile.inputs);
  const leaked = inputs.filter(
    (i) => /(^|\/)node_modules\/(sharp|onnxruntime-node)\//.test(i) || /^src\/tensor\/engine\.ts$/.test(i) || /^src\/engine\/onnx\/sessionOptions\.ts$/.test(i) || /^src\/model\/load\.ts$/.test(i),
  );
  if (leaked.length) throw new Error(`the page bundle includes Node-only modules: ${leaked.join(', ')}`);

  await copyFile(path.join(webDir, 'index.html'), path.join(outDir, 'index.html'));
  await copyFile(path.join(webDir, 'style.css'), path.join(outDir, 'style.css'));
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) {
    await copyFile(path.join(wasmDir, f), path.join(outDir, 'wasm', f));
  }
  for (const f of ORT_FILES) await copyFile(path.join(ortDist, f), path.join(outDir, 'ort', f));
  const app = await stat(path.join(outDir, 'app.js'));
  const summary = {
    outDir,
    appBytes: app.size,
    chunks: Object.keys(result.metafile.outputs).filter((o) => o.endsWith('.js')).map((o) => path.basename(o)),
    swaps: condense(swaps),
    ms: Math.round(performance.now() - started),
  };
  if (!quiet) {
    console.log(`built ${rel(outDir)}/ in ${summary.ms} ms: app.js ${(app.size / 1048576).toFixed(2)} MiB, ${summary.chunks.length} chunks`);
    for (const s of summary.swaps) console.log(`  browser swap  ${s}`);
  }
  return summary;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const out = args.indexOf('--out');
  buildPage({ dev: args.includes('--dev'), quiet: args.includes('--quiet'), ...(out >= 0 && args[out + 1] ? { outDir: args[out + 1] } : {}) }).catch((e) => {
    // esbuild's own errors carry their messages in e.errors
    const errors = e?.errors?.length ? e.errors.map((x) => x.text) : [e?.message ?? String(e)];
    for (const m of errors) console.error(`web build: ${m}`);
    process.exit(1);
  });
}
