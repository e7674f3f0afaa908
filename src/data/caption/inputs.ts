/**
 * The user's images: which files are taken, the sample key each gets, and how they are stored.
 *
 * Keys come from the path below the images folder without its extension, sanitised for
 * webdataset (which splits a tar name into key and extension at the first dot): letters, digits,
 * `_` and `-` only, at most 80 characters. Keys that collide are disambiguated deterministically:
 * a file that already has a key in the progress log keeps it; among the rest, in path order, the
 * first keeps the plain key and the others get `_2`, `_3`, ... (the lowest one free).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../errors.js';

/** What the shard format stores: the original bytes under one of these extensions. */
export type ImageExt = 'jpg' | 'png' | 'webp';

const FILE_EXTENSIONS: ReadonlySet<string> = new Set(['.jpg', '.jpeg', '.png', '.webp']);
const MAX_KEY_LENGTH = 80;

/** Code-unit order: the same everywhere, whatever the locale. */
function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface InputFile {
  /** path below the images folder, with `/` separators (the file name for a single file) */
  readonly file: string;
  readonly path: string;
}

export interface InputListing {
  /** sorted by `file` */
  readonly files: InputFile[];
  /** other files met (not .jpg, .jpeg, .png or .webp) */
  readonly ignored: number;
}

/**
 * The images below `root` (recursively; names starting with a dot and the folder `exclude` are
 * passed over), or `root` itself when it is a file.
 */
export async function listImages(root: string, exclude: string): Promise<InputListing> {
  const info = await stat(root).catch(() => null);
  if (info === null) throw new UserError(`${root}: no such file or folder`);
  if (info.isFile()) {
    if (!FILE_EXTENSIONS.has(path.extname(root).toLowerCase())) throw new UserError(`${root}: not a .jpg, .jpeg, .png or .webp file`);
    return { files: [{ file: path.basename(root), path: root }], ignored: 0 };
  }
  const files: InputFile[] = [];
  let ignored = 0;
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
      throw new UserError(`${dir}: cannot read folder (${e.code ?? e.message})`);
    });
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.name.startsWith('.') || full === exclude) continue;
      // a symbolic link counts as what it points to
      const kind = entry.isSymbolicLink() ? await stat(full).catch(() => null) : entry;
      if (kind?.isDirectory()) await walk(full);
      else if (kind?.isFile() && FILE_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) {
        files.push({ file: path.relative(root, full).split(path.sep).join('/'), path: full });
      } else ignored++;
    }
  };
  await walk(root);
  files.sort((a, b) => byCodeUnits(a.file, b.file));
  return { files, ignored };
}

/** The key a file would get if nothing collided with it. */
export function keyBase(file: string): string {
  const stem = file.slice(0, file.length - path.posix.extname(file).length);
  const key = stem
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z0-9_-]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, MAX_KEY_LENGTH);
  return key === '' ? 'image' : key;
}

/** A unique key per file (see the module comment); `recorded` gives the key a file had before. */
export function assignKeys(files: readonly string[], recorded: (file: string) => string | undefined): Map<string, string> {
  const keys = new Map<string, string>();
  const taken = new Set<string>();
  const claim = (file: string, key: string): void => {
    keys.set(file, key);
    taken.add(key);
  };
  const sorted = [...files].sort(byCodeUnits);
  for (const file of sorted) {
    const key = recorded(file);
    if (key !== undefined && !taken.has(key)) claim(file, key);
  }
  const rest = sorted.filter((f) => !keys.has(f));
  const bases = new Map<string, number>();
  for (const file of rest) bases.set(keyBase(file), (bases.get(keyBase(file)) ?? 0) + 1);
  // files whose key is theirs alone go first, so a collision never pushes them aside
  for (const file of rest) {
    const base = keyBase(file);
    if (bases.get(base) === 1 && !taken.has(base)) claim(file, base);
  }
  for (const file of rest) {
    if (keys.has(file)) continue;
    const base = keyBase(file);
    let key = base;
    for (let n = 2; taken.has(key); n++) key = `${base}_${n}`;
    claim(file, key);
  }
  return keys;
}

/** The stored extension from the file's signature (not its name), or null if not JPEG, PNG or WebP. */
export function sniffFormat(bytes: Uint8Array): ImageExt | null {
  const at = (i: number, ...values: number[]): boolean => values.every((v, j) => bytes[i + j] === v);
  if (at(0, 0xff, 0xd8, 0xff)) return 'jpg';
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'png';
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'webp';
  return null;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** SHA-256 of a file, streamed; null if it cannot be read (reported later, when it is captioned). */
export async function hashFile(file: string): Promise<string | null> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch {
    return null;
  }
  return hash.digest('hex');
}
