/**
 * Browser stand-in for `node:fs/promises`: `readFile` reads the page's virtual folder (vfs.ts);
 * a missing file fails with code ENOENT, as Node's does. Nothing else is offered.
 */
import { getFile } from './vfs.js';

export async function readFile(path: string, _encoding?: unknown): Promise<string> {
  const text = getFile(path);
  if (text === undefined) throw Object.assign(new Error(`ENOENT: no such file in the page's folder, open '${path}'`), { code: 'ENOENT' });
  return text;
}

export default { readFile };
