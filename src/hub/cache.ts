/**
 * The Hugging Face cache layout, as `huggingface_hub` (file_download.py) writes it:
 *
 *   <cache>/models--<org>--<name>/
 *     refs/<revision>                 the commit a branch or tag pointed at (text, no newline)
 *     blobs/<etag>                    file contents, named by the Hub's ETag (the SHA-256 of LFS
 *                                     files, the git blob SHA-1 of the others)
 *     blobs/<etag>.incomplete         a download in progress (resumed from its length)
 *     snapshots/<commit>/<file>       relative symlinks to ../../blobs/<etag>
 *
 * so the Python tools and this package read and fill one cache.
 */
import fs from 'node:fs';
import path from 'node:path';
import { COMMIT_RE } from './repoId.js';

export function repoFolder(cacheDir: string, repo: string): string {
  return path.join(cacheDir, ['models', ...repo.split('/')].join('--'));
}

export function blobPath(cacheDir: string, repo: string, etag: string): string {
  return path.join(repoFolder(cacheDir, repo), 'blobs', etag);
}

export function snapshotDir(cacheDir: string, repo: string, commit: string): string {
  return path.join(repoFolder(cacheDir, repo), 'snapshots', commit);
}

/** The commit `revision` stands for in the cache: itself if it is one, else what refs/ says. */
export function cachedCommit(cacheDir: string, repo: string, revision: string): string | undefined {
  if (COMMIT_RE.test(revision)) return revision;
  try {
    const commit = fs.readFileSync(path.join(repoFolder(cacheDir, repo), 'refs', revision), 'utf8').trim();
    return COMMIT_RE.test(commit) ? commit : undefined;
  } catch {
    return undefined;
  }
}

export function writeRef(cacheDir: string, repo: string, revision: string, commit: string): void {
  if (revision === commit) return;
  const file = path.join(repoFolder(cacheDir, repo), 'refs', revision);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, commit);
  fs.renameSync(tmp, file);
}

/**
 * Points `snapshots/<commit>/<file>` at its blob with a relative symlink (what huggingface_hub
 * makes); where symlinks are not allowed, the blob is copied there instead, as it does.
 */
export function linkSnapshotFile(cacheDir: string, repo: string, commit: string, file: string, etag: string): void {
  const pointer = path.join(snapshotDir(cacheDir, repo, commit), file);
  const blob = blobPath(cacheDir, repo, etag);
  fs.mkdirSync(path.dirname(pointer), { recursive: true });
  fs.rmSync(pointer, { force: true });
  try {
    fs.symlinkSync(path.relative(path.dirname(pointer), blob), pointer);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    fs.copyFileSync(blob, pointer);
  }
}
