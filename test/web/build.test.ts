// The page's sources type-check (esbuild does not check types), and the bundle holds no Node-only code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..'); // from dist/test/web/

test('web/ type-checks under strict TypeScript', { timeout: 120_000 }, () => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', 'web/tsconfig.json'], { cwd: ROOT, stdio: 'pipe' });
  } catch (e) {
    const out = (e as { stdout?: Buffer }).stdout?.toString() ?? String(e);
    assert.fail(`tsc -p web/tsconfig.json:\n${out}`);
  }
});

test('the page bundle has no Node built-ins, sharp or the Node engine set-up', { timeout: 120_000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-web-build-'));
  try {
    execFileSync(process.execPath, ['web/build.mjs', '--quiet', '--dev', '--out', out], { cwd: ROOT, stdio: 'pipe' });
    for (const f of ['index.html', 'style.css', 'app.js', 'wasm/tfjs-backend-wasm.wasm', 'wasm/tfjs-backend-wasm-simd.wasm', 'wasm/tfjs-backend-wasm-threaded-simd.wasm', 'ort/ort-wasm-simd-threaded.asyncify.mjs', 'ort/ort-wasm-simd-threaded.asyncify.wasm']) {
      assert.ok(fs.existsSync(path.join(out, f)), `${f} is missing from the build`);
    }
    const js = fs.readdirSync(out).filter((f) => f.endsWith('.js')).map((f) => fs.readFileSync(path.join(out, f), 'utf8')).join('\n');
    assert.doesNotMatch(js, /from\s*["']node:|require\(["']node:|import\(["']node:/, 'a node: import survived bundling');
    assert.doesNotMatch(js, /from\s*["']sharp["']|require\(["']sharp["']\)/, 'sharp survived bundling');
    // the browser engine is in; the Node one (createRequire for the WASM paths) is not
    assert.match(js, /src\/tensor\/engine\.browser\.ts/);
    assert.doesNotMatch(js, /src\/tensor\/engine\.ts/);
    assert.doesNotMatch(js, /createRequire/);
    // the ONNX Runtime stages come in with onnxruntime-web and the browser session options
    assert.match(js, /src\/engine\/onnx\/sessionOptions\.browser\.ts/);
    assert.doesNotMatch(js, /src\/engine\/onnx\/sessionOptions\.ts/);
    assert.match(js, /onnxruntime-web/);
    assert.doesNotMatch(js, /onnxruntime-node/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
