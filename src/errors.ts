/**
 * A problem with what the user handed us (a file, a key, a field, an option value), as opposed
 * to a bug. The CLI prints its message as one line and exits with code 2; anything else exits 1.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
