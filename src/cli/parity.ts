/** `ps3 parity <fixture-dir>`: every case of a reference fixture folder, one line each. */
import { initEngine } from '../tensor/engine.js';
import { runParity, type CaseResult } from '../eval/parity.js';
import { resolveTrunkEngine } from '../engine/trunkEngine.js';
import { EXIT } from './run.js';

function line(r: CaseResult): string {
  const tag = r.status === 'pass' ? 'ok  ' : r.status === 'fail' ? 'FAIL' : 'skip';
  const skipped = r.checks.filter((k) => k.status === 'skip').length;
  const compared = r.checks.length - skipped;
  const worst = Number.isFinite(r.worst) ? `worst ${r.worst.toFixed(3)} of tolerance` : 'worst: beyond tolerance';
  const failures = r.checks.filter((k) => k.status === 'fail').map((k) => `${k.output}: ${k.detail ?? ''}`);
  const extra = r.detail ? ` — ${r.detail}` : failures.length ? ` — ${failures.slice(0, 3).join('; ')}` : '';
  return `${tag} ${r.name.padEnd(24)} ${compared} outputs${skipped ? `, ${skipped} skipped` : ''}, ${worst}${extra}`;
}

export async function parityCommand(dir: string, options: { backend?: string; trunk?: string }): Promise<number> {
  await initEngine(options);
  const report = await runParity(dir, (r) => process.stdout.write(`${line(r)}\n`), resolveTrunkEngine(options.trunk));
  process.stdout.write(`parity: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped\n`);
  return report.failed === 0 ? EXIT.ok : EXIT.badData;
}
