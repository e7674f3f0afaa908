/**
 * The page's virtual folder: text files the page fetched (a model folder's tokenizer files),
 * readable through the `node:fs/promises` shim under the paths they were put at. This is how
 * `src/io/tokenizer.ts`, which reads a folder with `readFile`, runs unchanged in the page.
 */
const files = new Map<string, string>();

export function putFile(path: string, text: string): void {
  files.set(path, text);
}

export function getFile(path: string): string | undefined {
  return files.get(path);
}

export function clearFolder(dir: string): void {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  for (const key of [...files.keys()]) if (key.startsWith(prefix)) files.delete(key);
}
