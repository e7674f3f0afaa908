/**
 * How every command ends. The exit codes, the same for every command:
 *   0    success
 *   1    a bug (its stack is printed; please report it)
 *   2    bad input: an option, a path or a file the user gave (one line on stderr naming it),
 *        or options that ask the engine to hold more at once than its heap takes
 *        (`encode` of a folder: some images could not be read and were skipped)
 *   3    bad data found: the command ran and reports problems in what it checked or made
 *        (`data validate` problems, `data caption` images that failed, `parity` mismatches)
 *   130  interrupted (Ctrl-C) where a command stops cleanly
 */
import { isUserError } from '../errors.js';
import { resolveTrunkEngine, useTrunkEngine } from '../engine/trunkEngine.js';
import { EngineOutOfMemoryError } from '../tensor/engine.js';

export const EXIT = { ok: 0, bug: 1, badInput: 2, badData: 3, interrupted: 130 } as const;

export async function runCommand(action: () => Promise<number | void>): Promise<void> {
  try {
    // passes that name no engine (evaluation, the demo) run on $PS3_TRUNK's, else the fast one
    useTrunkEngine(resolveTrunkEngine());
    const code = await action();
    process.exitCode = code ?? EXIT.ok;
  } catch (e) {
    if (isUserError(e)) {
      process.stderr.write(`ps3: ${e.message.split('\n')[0]}\n`);
      process.exitCode = EXIT.badInput;
    } else if (e instanceof EngineOutOfMemoryError) {
      // what the options ask to hold at once does not fit the engine's heap: theirs to change, not a bug
      process.stderr.write(`ps3: ${e.message}: hold less at once (a smaller --batch, with --accum to keep a step's samples; a smaller --tile-batch, model or resolution)\n`);
      process.exitCode = EXIT.badInput;
    } else {
      process.stderr.write(`ps3: internal error (a bug; please report it):\n${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = EXIT.bug;
    }
  }
}

/**
 * Once a command has returned, nothing it started should hold the process open. If something
 * does (a leaked worker, socket or timer: a bug), say what after a grace period and end anyway,
 * rather than hang.
 */
export function exitWhenIdle(graceMs = 5000): void {
  setTimeout(() => {
    const held = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout' && r !== 'TTYWrap');
    process.stderr.write(`ps3: internal error (a bug; please report it): the command finished but ${held.join(', ') || 'something'} still held the process open\n`);
    process.exit(process.exitCode === undefined || process.exitCode === EXIT.ok ? EXIT.bug : process.exitCode);
  }, graceMs).unref();
}
