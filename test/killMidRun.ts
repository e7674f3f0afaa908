/** Start a training command and SIGKILL it once its metrics.jsonl has some lines: the kill of a kill-and-resume test. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';

/** Runs `node args`, kills it when `out`/metrics.jsonl holds `lines` lines, and returns how many it held then. */
export async function killAfterMetricLines(args: readonly string[], out: string, lines: number): Promise<number> {
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_, s) => resolve(s)));
  const file = path.join(out, 'metrics.jsonl');
  const killedAt = await new Promise<number>((resolve) => {
    const timer = setInterval(() => {
      const held = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
      if (held >= lines) {
        clearInterval(timer);
        child.kill('SIGKILL');
        resolve(held);
      }
    }, 5);
  });
  assert.equal(await exited, 'SIGKILL', 'the run must have been killed before it finished');
  return killedAt;
}
