/**
 * VILA-HD's `config.json`: the language model, the projector, the prompt head, which PS3 model the
 * folder stands on, and which encoding methods it holds an LM + projector for. Validated once at
 * the edge; every error names the file and the field.
 *
 * ```json
 * { "model_type": "vila-hd", "ps3_model": "../ps3-tiny",
 *   "lm": { "vocab_size": 160, "width": 128, "layers": 4, "heads": 4, "mlp_ratio": 4, "context_length": 1024,
 *           "tie_word_embeddings": true, "norm_eps": 1e-5 },
 *   "projector": { "merge": 2, "hidden": 128 }, "prompt_head": { "hidden": 128 },
 *   "methods": ["ps3", "lowres", "anyres"], "selection_weight": 1,
 *   "context_lengths": { "anyres": 2048 } }
 * ```
 *
 * `ps3_model` is a path relative to the folder (or absolute): a PS3 model folder, or `ps3`
 * for a copy kept inside the VILA-HD folder. `projector.hidden` is the width between the
 * projector's two Linears (default `lm.width`, as VILA's projector has): a merged cell's four
 * tokens (4 x the vision width) pass through it on their way to the LM's width.
 *
 * Every method has an LM of its own with the shape `lm` gives; `context_lengths` (optional) gives
 * some of them another context length than `lm.context_length` — the learned positions are the
 * only weights it shapes, so a method whose visual tokens are many (AnyRes tiles) can have a
 * longer context in the same folder without touching the other methods' weights.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { readJsonFile } from '../io/jsonFile.js';
import { ENCODE_METHODS, type EncodeMethod } from '../model/baselines.js';

const lmSchema = z.object({
  vocab_size: z.number().int().positive(),
  width: z.number().int().positive(),
  layers: z.number().int().positive(),
  heads: z.number().int().positive(),
  mlp_ratio: z.number().positive().default(4),
  context_length: z.number().int().min(8),
  tie_word_embeddings: z.boolean().default(true),
  norm_eps: z.number().positive().default(1e-5),
}).refine((l) => l.width % l.heads === 0, { message: 'width must be a multiple of heads', path: ['width'] });

const contextLength = z.number({ message: 'must be an integer >= 8' }).int('must be an integer >= 8').min(8, 'must be an integer >= 8');

export const vilaConfigSchema = z.object({
  model_type: z.literal('vila-hd'),
  ps3_model: z.string().min(1),
  lm: lmSchema,
  projector: z.object({ merge: z.literal(2).default(2), hidden: z.number().int().positive().optional() }).default({ merge: 2 }),
  prompt_head: z.object({ hidden: z.number().int().positive() }),
  methods: z.array(z.enum(ENCODE_METHODS)).min(1).refine((m) => new Set(m).size === m.length, { message: 'methods must be distinct' }),
  /** weight of the selection BCE against the answer's next-token loss */
  selection_weight: z.number().nonnegative().default(1),
  /** per method, a context length other than `lm.context_length` */
  context_lengths: z.record(z.string(), contextLength).optional(),
  /** per tiling method (anyres, s2), the resolution its LM was trained to tile: answering tiles at it by default */
  resolutions: z.record(z.string(), z.number({ message: 'must be a positive integer' }).int('must be a positive integer').positive('must be a positive integer')).optional(),
}).passthrough().superRefine((c, ctx) => {
  for (const field of ['context_lengths', 'resolutions'] as const) {
    for (const m of Object.keys(c[field] ?? {})) {
      if (!(c.methods as readonly string[] | undefined)?.includes(m)) {
        ctx.addIssue({ code: 'custom', path: [field, m], message: `"${m}" is not a method of this folder (it has ${(c.methods ?? []).join(', ')})` });
      } else if (field === 'resolutions' && !(TILING_METHODS as readonly string[]).includes(m)) {
        ctx.addIssue({ code: 'custom', path: [field, m], message: `only ${TILING_METHODS.join(' and ')} tile at a resolution` });
      }
    }
  }
});

/** The methods that tile the image at a resolution of their own. */
export const TILING_METHODS = ['anyres', 's2'] as const satisfies readonly EncodeMethod[];

export function isTiling(method: EncodeMethod): method is (typeof TILING_METHODS)[number] {
  return (TILING_METHODS as readonly string[]).includes(method);
}

export type VilaConfigJson = z.input<typeof vilaConfigSchema>;

export interface LmConfig {
  readonly vocabSize: number;
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
  /** int(width * mlp_ratio) */
  readonly mlpHidden: number;
  readonly contextLength: number;
  readonly tieWordEmbeddings: boolean;
  readonly normEps: number;
}

export interface VilaConfig {
  readonly ps3Model: string;
  /** the shape every method's LM has; its `contextLength` is the default one (a method's own: `lmConfigOf`) */
  readonly lm: LmConfig;
  /** the methods whose LM has a context length other than `lm.contextLength` */
  readonly contextLengths: Readonly<Partial<Record<EncodeMethod, number>>>;
  /** the tiling methods' training resolutions (answering's default) */
  readonly resolutions: Readonly<Partial<Record<EncodeMethod, number>>>;
  readonly promptHidden: number;
  /** width between the projector's two Linears */
  readonly projectorHidden: number;
  readonly methods: readonly EncodeMethod[];
  readonly selectionWeight: number;
  /** the JSON as read (unknown fields kept), for writing back */
  readonly raw: Record<string, unknown>;
}

function issuePath(p: readonly PropertyKey[]): string {
  return p.length === 0 ? '(config)' : p.map(String).join('.');
}

export function parseVilaConfig(json: unknown, where: string): VilaConfig {
  if (typeof json === 'object' && json !== null && (json as Record<string, unknown>)['model_type'] === 'ps3') {
    throw new UserError(`${where}: a PS3 model (model_type "ps3"), not a VILA-HD one: questions need a VILA-HD folder (ps3 train-mllm makes one on this PS3)`);
  }
  const r = vilaConfigSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new UserError(`${where}: field ${issuePath(issue.path)}: ${issue.message}`);
  }
  const c = r.data;
  return {
    ps3Model: c.ps3_model,
    lm: {
      vocabSize: c.lm.vocab_size, width: c.lm.width, layers: c.lm.layers, heads: c.lm.heads, mlpHidden: Math.trunc(c.lm.width * c.lm.mlp_ratio),
      contextLength: c.lm.context_length, tieWordEmbeddings: c.lm.tie_word_embeddings, normEps: c.lm.norm_eps,
    },
    promptHidden: c.prompt_head.hidden,
    projectorHidden: c.projector.hidden ?? c.lm.width,
    contextLengths: (c.context_lengths ?? {}) as Partial<Record<EncodeMethod, number>>,
    resolutions: (c.resolutions ?? {}) as Partial<Record<EncodeMethod, number>>,
    methods: c.methods,
    selectionWeight: c.selection_weight,
    raw: json as Record<string, unknown>,
  };
}

/** The LM `method` runs: the folder's, with that method's own context length where it has one. */
export function lmConfigOf(config: VilaConfig, method: EncodeMethod): LmConfig {
  const own = config.contextLengths[method];
  return own === undefined || own === config.lm.contextLength ? config.lm : { ...config.lm, contextLength: own };
}

/** Where a method's context length comes from, for messages: `context_lengths.M` or `lm.context_length`. */
export function contextFieldOf(config: VilaConfig, method: EncodeMethod): string {
  return config.contextLengths[method] === undefined ? 'lm.context_length' : `context_lengths.${method}`;
}

/** The longest context any method of the folder has. */
export function longestContext(config: VilaConfig): number {
  return Math.max(...config.methods.map((m) => lmConfigOf(config, m).contextLength));
}

/**
 * `config` with `method`'s context length set to `n`: an entry in `context_lengths`, or none
 * when `n` is the folder's `lm.context_length`. `method` must be one of the config's methods.
 */
export function withContextLength(config: VilaConfig, method: EncodeMethod, n: number): VilaConfig {
  const lengths: Record<string, number> = { ...config.contextLengths };
  if (n === config.lm.contextLength) delete lengths[method];
  else lengths[method] = n;
  const { context_lengths: _old, ...rest } = config.raw;
  return parseVilaConfig(Object.keys(lengths).length ? { ...rest, context_lengths: lengths } : rest, 'VILA-HD config');
}

export function readVilaConfig(file: string): VilaConfig {
  return parseVilaConfig(readJsonFile(file), file);
}

/** Whether a folder's config.json says it is a VILA-HD model (not a PS3 one). */
export function isVilaFolder(dir: string): boolean {
  try {
    const json = JSON.parse(fs.readFileSync(`${dir}/config.json`, 'utf8')) as { model_type?: unknown };
    return json.model_type === 'vila-hd';
  } catch {
    return false;
  }
}

/** `config` with the tiling `method`'s training resolution recorded as `px`. */
export function withResolution(config: VilaConfig, method: EncodeMethod, px: number): VilaConfig {
  return parseVilaConfig({ ...config.raw, resolutions: { ...config.resolutions, [method]: px } }, 'VILA-HD config');
}

/**
 * Sizes of the LM presets: `micro` for tests, `tiny` to stand on the tiny PS3, `small` wider and
 * deeper (about 3.4x tiny's multiply-adds a token). A preset's projector is as wide as its LM (the
 * config's default), as VILA's is: a wider one (`--projector-hidden 512` on tiny) learnt the
 * reading stage more slowly (models/vila-hd-tiny/TRAINING.md, "A wider projector").
 */
export const LM_PRESETS: Readonly<Record<string, Omit<VilaConfigJson['lm'], 'vocab_size'> & { prompt_hidden: number }>> = {
  micro: { width: 32, layers: 2, heads: 2, mlp_ratio: 2, context_length: 256, tie_word_embeddings: true, norm_eps: 1e-5, prompt_hidden: 32 },
  tiny: { width: 128, layers: 4, heads: 4, mlp_ratio: 4, context_length: 1024, tie_word_embeddings: true, norm_eps: 1e-5, prompt_hidden: 128 },
  small: { width: 192, layers: 6, heads: 6, mlp_ratio: 4, context_length: 1024, tie_word_embeddings: true, norm_eps: 1e-5, prompt_hidden: 192 },
};
