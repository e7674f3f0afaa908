/**
 * VILA-HD's `config.json`: the language model, the projector, the prompt head, which PS3 model the
 * folder stands on, and which encoding methods it holds an LM + projector for. Validated once at
 * the edge; every error names the file and the field.
 *
 * ```json
 * { "model_type": "vila-hd", "ps3_model": "../ps3-tiny",
 *   "lm": { "vocab_size": 160, "width": 128, "layers": 4, "heads": 4, "mlp_ratio": 4, "context_length": 1024,
 *           "tie_word_embeddings": true, "norm_eps": 1e-5 },
 *   "projector": { "merge": 2 }, "prompt_head": { "hidden": 128 },
 *   "methods": ["ps3", "lowres"], "selection_weight": 1 }
 * ```
 *
 * `ps3_model` is a path relative to the folder (or absolute): a PS3 model folder, or `ps3`
 * for a copy kept inside the VILA-HD folder.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { readJsonFile } from '../io/jsonFile.js';
import { ENCODE_METHODS, type EncodeMethod } from '../eval/baselines.js';

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

export const vilaConfigSchema = z.object({
  model_type: z.literal('vila-hd'),
  ps3_model: z.string().min(1),
  lm: lmSchema,
  projector: z.object({ merge: z.literal(2).default(2) }).default({ merge: 2 }),
  prompt_head: z.object({ hidden: z.number().int().positive() }),
  methods: z.array(z.enum(ENCODE_METHODS)).min(1).refine((m) => new Set(m).size === m.length, { message: 'methods must be distinct' }),
  /** weight of the selection BCE against the answer's next-token loss */
  selection_weight: z.number().nonnegative().default(1),
}).passthrough();

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
  readonly lm: LmConfig;
  readonly promptHidden: number;
  readonly methods: readonly EncodeMethod[];
  readonly selectionWeight: number;
  /** the JSON as read (unknown fields kept), for writing back */
  readonly raw: Record<string, unknown>;
}

function issuePath(p: readonly PropertyKey[]): string {
  return p.length === 0 ? '(config)' : p.map(String).join('.');
}

export function parseVilaConfig(json: unknown, where: string): VilaConfig {
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
    methods: c.methods,
    selectionWeight: c.selection_weight,
    raw: json as Record<string, unknown>,
  };
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

/** Sizes of the LM presets: `micro` for tests, `tiny` to stand on the tiny PS3. */
export const LM_PRESETS: Readonly<Record<string, Omit<VilaConfigJson['lm'], 'vocab_size'> & { prompt_hidden: number }>> = {
  micro: { width: 32, layers: 2, heads: 2, mlp_ratio: 2, context_length: 256, tie_word_embeddings: true, norm_eps: 1e-5, prompt_hidden: 32 },
  tiny: { width: 128, layers: 4, heads: 4, mlp_ratio: 4, context_length: 1024, tie_word_embeddings: true, norm_eps: 1e-5, prompt_hidden: 128 },
};
