/** Browser stand-in for `node:path`: POSIX `join`, `dirname`, `basename` over the page's virtual folder paths. */
export const sep = '/';

function normalise(p: string): string {
  const absolute = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!absolute) out.push('..');
    } else out.push(part);
  }
  const joined = out.join('/');
  return absolute ? `/${joined}` : joined || '.';
}

export function join(...parts: string[]): string {
  return normalise(parts.filter((p) => p !== '').join('/'));
}

export function dirname(p: string): string {
  const n = normalise(p);
  const i = n.lastIndexOf('/');
  return i < 0 ? '.' : i === 0 ? '/' : n.slice(0, i);
}

export function basename(p: string): string {
  const n = normalise(p);
  return n.slice(n.lastIndexOf('/') + 1);
}

export default { sep, join, dirname, basename };
