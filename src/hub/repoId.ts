/**
 * Hub model ids as users write them: `ORG/NAME` or `ORG/NAME@REVISION`, where the revision is a
 * branch, a tag or a commit (default `main`). Names follow the Hub's rules (huggingface_hub's
 * `validate_repo_id`): letters, digits, `-`, `_`, `.`; no `--` or `..`; not starting or ending
 * with `-` or `.`; at most 96 characters.
 */
import { UserError } from '../errors.js';

export interface ModelId {
  /** `org/name` */
  readonly repo: string;
  readonly revision: string;
}

const PART = /^[A-Za-z0-9_.-]{1,96}$/;
export const COMMIT_RE = /^[0-9a-f]{40}$/;

function validPart(part: string): boolean {
  return PART.test(part) && !part.includes('--') && !part.includes('..') && !/^[-.]|[-.]$/.test(part);
}

/** Whether `spec` is written like a Hub id (it says nothing of whether such a repo exists). */
export function looksLikeModelId(spec: string): boolean {
  const at = spec.indexOf('@');
  const repo = at < 0 ? spec : spec.slice(0, at);
  const parts = repo.split('/');
  return parts.length === 2 && parts.every(validPart) && (at < 0 || spec.length > at + 1);
}

export function parseModelId(spec: string): ModelId {
  if (!looksLikeModelId(spec)) {
    throw new UserError(`"${spec}" is neither a model folder nor a Hub id (ORG/NAME or ORG/NAME@REVISION)`);
  }
  const at = spec.indexOf('@');
  const revision = at < 0 ? 'main' : spec.slice(at + 1);
  if (revision.split('/').some((p) => p === '' || p === '.' || p === '..')) throw new UserError(`${spec}: revision "${revision}" is not a valid name`);
  return { repo: at < 0 ? spec : spec.slice(0, at), revision };
}
