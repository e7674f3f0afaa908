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

/** `--loss-weights c,p,q`: the contrastive, bottom-up and top-down box losses' weights, each >= 0. */
export const lossWeights = () =>
  z.string().transform((s, ctx) => {
    const parts = s.split(',').map((x) => Number(x.trim()));
    if (parts.length !== 3 || parts.some((x) => !Number.isFinite(x) || x < 0) || s.split(',').some((x) => x.trim() === '')) {
      ctx.addIssue({ code: 'custom', message: `--loss-weights must be three non-negative numbers "contrastive,prior,posterior", got "${s}"` });
      return z.NEVER;
    }
    return { contrastive: parts[0]!, priorBox: parts[1]!, posteriorBox: parts[2]! };
  });
