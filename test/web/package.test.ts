// The README's browser snippet, as someone who installed the package would use it: `npm pack`,
// the tarball unpacked as node_modules/ps3-ts, the snippet bundled by esbuild for the browser
// with nothing but the package's own exports and "browser" field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..'); // from dist/test/web/

function browserSnippet(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const snippet = blocks.find((b) => b.includes("from 'ps3-ts/browser'"));
  assert.ok(snippet, 'the README has no snippet importing ps3-ts/browser');
  return snippet;
}

test('the README\'s browser snippet bundles from the packed package, without Node code', { timeout: 180_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-pack-'));
  try {
    // dist/ is already built by `npm test`; packing must not run the build again
    const packed = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0]!.files.map((f) => f.path);
    assert.ok(files.includes('dist/src/browser.js') && files.includes('dist/src/tensor/engine.browser.js'), 'the tarball lacks the browser entry');
    assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('dist/test/')), 'tests are shipped');
    const pkgDir = path.join(tmp, 'app', 'node_modules', 'ps3-ts');
    fs.mkdirSync(pkgDir, { recursive: true });
    execFileSync('tar', ['-xzf', path.join(tmp, packed[0]!.filename), '-C', pkgDir, '--strip-components=1']);
    const entry = path.join(tmp, 'app', 'snippet.ts');
    fs.writeFileSync(entry, browserSnippet());
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      outdir: path.join(tmp, 'app', 'out'),
      splitting: true,
      metafile: true,
      logLevel: 'silent',
      // the package's dependencies, as an install would place them
      nodePaths: [path.join(ROOT, 'node_modules')],
    });
    const inputs = Object.keys(result.metafile.inputs);
    assert.ok(inputs.some((i) => i.endsWith('node_modules/ps3-ts/dist/src/tensor/engine.browser.js')), 'the browser engine is not in the bundle');
    assert.ok(!inputs.some((i) => i.endsWith('node_modules/ps3-ts/dist/src/tensor/engine.js')), 'the Node engine set-up is in the bundle');
    assert.ok(!inputs.some((i) => /node_modules\/sharp\//.test(i)), 'sharp is in the bundle');
    // the fast path: onnxruntime-web and the browser session options in place of the Node ones
    assert.ok(inputs.some((i) => i.endsWith('node_modules/ps3-ts/dist/src/engine/onnx/sessionOptions.browser.js')), 'the browser session options are not in the bundle');
    assert.ok(!inputs.some((i) => i.endsWith('node_modules/ps3-ts/dist/src/engine/onnx/sessionOptions.js')), 'the Node session options are in the bundle');
    assert.ok(inputs.some((i) => /node_modules\/onnxruntime-web\//.test(i)), 'onnxruntime-web is not in the bundle');
    assert.ok(!inputs.some((i) => /node_modules\/onnxruntime-node\//.test(i)), 'onnxruntime-node is in the bundle');
    const js = result.outputFiles.map((f) => f.text).join('\n');
    assert.doesNotMatch(js, /from\s*["']node:|require\(["']node:|import\(["']node:/, 'a node: import survived bundling');
    assert.match(js, /fetchModel|config\.json/);
    assert.doesNotMatch(js, /onnxruntime-node/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
