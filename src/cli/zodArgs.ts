/** zod pieces for command-line options, which arrive as strings. */
import { z } from 'zod';

/** `--name` as a finite number; anything else is refused naming the option and the value. */
export const num = (name: string) =>
  z.string().transform((s, ctx) => {
    const n = Number(s);
    if (s.trim() === '' || !Number.isFinite(n)) {
      ctx.addIssue({ code: 'custom', message: `--${name} must be a number, got "${s}"` });
      return z.NEVER;
    }
    return n;
  });
