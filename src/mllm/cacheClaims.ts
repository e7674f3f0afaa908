/**
 * Claims that let several builders fill one training cache at once: processes on one machine
 * (one per core: a cache image is a single-threaded render and encode) or machines sharing the
 * folder. A builder caches an image only while it holds the image's `NNNNNN.claim`, made with an
 * exclusive create; the others go on to the next image and come back for it at the end.
 *
 * A claim whose builder is gone is taken over: at once when it was made on this machine by a
 * process that no longer runs, after `CLAIM_STALE_MS` otherwise (another machine's process cannot
 * be asked). Two builders that take over the same claim both cache the image; its files are
 * written whole and renamed, so the second write only repeats the first.
 */
import fs from 'node:fs';
import os from 'node:os';

/** a claim older than this is a dead builder's (an image takes seconds, a released model's a minute) */
export const CLAIM_STALE_MS = 10 * 60_000;

const owner = (): string => `${os.hostname()} ${process.pid}\n`;

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, as another user
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the claim in `file` is gone or its builder is. */
function stale(file: string, now: number): boolean {
  let text: string;
  let mtime: number;
  try {
    text = fs.readFileSync(file, 'utf8');
    mtime = fs.statSync(file).mtimeMs;
  } catch {
    return true;
  }
  const [host, pid] = text.trim().split(' ');
  if (host === os.hostname() && pid !== undefined && /^\d+$/.test(pid) && !running(Number(pid))) return true;
  return now - mtime > CLAIM_STALE_MS;
}

/** Makes `file` this process's claim; false while another live builder holds it. */
export function claim(file: string, now = Date.now()): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, owner(), { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (attempt > 0 || !stale(file, now)) return false;
    fs.rmSync(file, { force: true });
  }
  return false;
}

export function release(file: string): void {
  fs.rmSync(file, { force: true });
}
