/**
 * What must not outlive the process when it is ended by SIGINT or SIGTERM (a child process, most
 * of all: worker threads die with the process, children do not). While any clean-up is
 * registered, those signals run every clean-up and then end the process with the same signal,
 * as it would have ended without them.
 */
const cleanups = new Set<() => void>();

function onSignal(signal: NodeJS.Signals): void {
  for (const cleanup of [...cleanups]) {
    try {
      cleanup();
    } catch {
      // one failing clean-up must not keep the others from running
    }
  }
  cleanups.clear();
  stopListening();
  process.kill(process.pid, signal);
}

function stopListening(): void {
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
}

/** Run `cleanup` if SIGINT or SIGTERM ends the process; the returned function unregisters it. */
export function onTerminate(cleanup: () => void): () => void {
  if (cleanups.size === 0) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  cleanups.add(cleanup);
  return () => {
    cleanups.delete(cleanup);
    if (cleanups.size === 0) stopListening();
  };
}
