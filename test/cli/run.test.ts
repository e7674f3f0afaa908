/**
 * How a command ends (src/cli/run.ts): a user's mistake and an engine heap too small for what
 * the options ask to hold are one line and exit 2; anything else is a bug, with its stack, exit 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand } from '../../src/cli/run.js';
import { UserError } from '../../src/errors.js';
import { EngineOutOfMemoryError } from '../../src/tensor/engine.js';

async function ending(action: () => Promise<number | void>): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array): boolean => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    await runCommand(action);
  } finally {
    process.stderr.write = write;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { code, stderr };
}

test('the engine running out of its heap ends as one line with what to change, exit 2, not as a bug', async () => {
  const r = await ending(async () => {
    throw new EngineOutOfMemoryError(279 * 1024 ** 2);
  });
  assert.equal(r.code, 2);
  const lines = r.stderr.split('\n').filter((l) => l);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^ps3: out of memory: the WASM heap \(at most 4 GiB\) cannot allocate 279 MiB more: hold less at once \(a smaller --batch/);
  assert.doesNotMatch(r.stderr, /internal error|^\s+at /m);
});

test('a user error is its first line, exit 2; any other error is a bug with its stack, exit 1', async () => {
  const user = await ending(async () => {
    throw new UserError('--steps must be a positive integer, got 0');
  });
  assert.deepEqual(user, { code: 2, stderr: 'ps3: --steps must be a positive integer, got 0\n' });
  const bug = await ending(async () => {
    throw new TypeError('x is undefined');
  });
  assert.equal(bug.code, 1);
  assert.match(bug.stderr, /^ps3: internal error \(a bug; please report it\):\nTypeError: x is undefined\n\s+at /);
  assert.equal((await ending(async () => 3)).code, 3);
});
