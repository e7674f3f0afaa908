/**
 * How every command ends: a user's mistake (UserError) is one line on stderr and exit code 2;
 * anything else is a bug: its stack and exit code 1.
 */
import { isUserError } from '../errors.js';
import { resolveTrunkEngine, useTrunkEngine } from '../engine/trunkEngine.js';

export async function runCommand(action: () => Promise<number | void>): Promise<void> {
  try {
    // passes that name no engine (evaluation, the demo) run on $PS3_TRUNK's, else the fast one
    useTrunkEngine(resolveTrunkEngine());
    const code = await action();
    process.exitCode = code ?? 0;
  } catch (e) {
    if (isUserError(e)) {
      process.stderr.write(`ps3: ${e.message.split('\n')[0]}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`ps3: internal error (a bug; please report it):\n${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = 1;
    }
  }
}
