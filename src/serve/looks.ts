/**
 * A request's look options (`looks`, `tokens`, `all`, `scales`) as encoder options, clamped the
 * way `ps3 encode` clamps them (more looks or tokens than the image has patches for).
 */
import { UserError } from '../errors.js';
import type { VisionConfig } from '../io/config.js';
import type { EncodeOptions } from '../model/encoder.js';
import { baseBudgets, gridAtScale } from '../model/selection.js';

export interface LookRequest {
  readonly looks?: number;
  readonly tokens?: number;
  readonly all?: boolean;
  readonly scales?: number;
}

export type LookOptions = Pick<EncodeOptions, 'numLookClose' | 'numTokenLookClose' | 'onlySelectFirstNScale'>;

export function requestLooks(cfg: VisionConfig, r: LookRequest): LookOptions {
  const given = [r.looks !== undefined, r.tokens !== undefined, r.all === true].filter(Boolean).length;
  if (given > 1) throw new UserError('give one of looks, tokens, all');
  const ns = cfg.scales.length - 1;
  if (r.scales !== undefined && (r.scales < 1 || r.scales > ns)) throw new UserError(`scales must be in [1, ${ns}], got ${r.scales}`);
  const restrict = r.scales !== undefined ? { onlySelectFirstNScale: r.scales } : {};
  if (r.all) return { numLookClose: 'all', ...restrict };
  // square inputs: the processor squashes every image to the top scale
  const S = cfg.scales[ns]!;
  const counted = r.scales ?? ns;
  const maxTokens = Array.from({ length: counted }, (_, i) => gridAtScale(cfg, S, S, i + 1)).reduce((a, [h, w]) => a + h * w, 0);
  if (r.tokens !== undefined) return { numTokenLookClose: Math.min(r.tokens, maxTokens), ...restrict };
  const perLook = baseBudgets(cfg).reduce((a, c) => a + c, 0);
  return { numLookClose: Math.min(r.looks ?? 1, Math.ceil(maxTokens / perLook)), ...restrict };
}
