/**
 * PS3's `config.json` (the Hugging Face `PS3Config` layout), validated once at the edge and
 * resolved into the typed records the model uses. Defaults are the reference's
 * (`configuration_ps3.py`); every error names the field.
 */
import { z } from 'zod';
import { UserError } from '../errors.js';

/** The ViT trunk's dimensions: from a released timm name, or spelled out in `vision_config.trunk`. */
export interface TrunkConfig {
  readonly patchSize: number;
  readonly width: number;
  readonly depth: number;
  readonly heads: number;
  /** hidden width of each block's MLP: int(width * mlp_ratio), as timm computes it */
  readonly mlpHidden: number;
  readonly poolHeads: number;
  readonly poolMlpHidden: number;
  readonly qkvBias: boolean;
  readonly normEps: number;
  /** the image size the stored position embedding was trained for */
  readonly imgSize: number;
}

export interface VisionConfig {
  readonly modelName: string;
  readonly trunk: TrunkConfig;
  /** ascending, as the reference sorts them; scales[0] is the low-res scale */
  readonly scales: readonly number[];
  readonly selectBasedOnLayer: readonly number[];
  readonly maxSelectNum: number;
  readonly maxSelectNumEachScale: readonly number[] | null;
  readonly separatePosEmb: boolean;
  readonly highresSelectionFeature: boolean;
  readonly convnet: { readonly hidden: number; readonly out: number; readonly depth: number; readonly kernel: number };
}

export interface TextConfig {
  readonly outputDim: number;
  readonly promptProjDim: number;
  readonly contextLength: number;
  readonly vocabSize: number;
  readonly width: number;
  readonly heads: number;
  readonly layers: number;
  readonly mlpHidden: number;
  readonly causalMask: boolean;
  readonly projBias: boolean;
  readonly poolType: 'first' | 'last' | 'argmax';
  readonly normEps: number;
  readonly geluTanh: boolean;
  readonly padId: number;
  readonly hfTokenizerName: string | null;
  readonly tokenizerClean: 'canonicalize' | 'lower' | 'none';
}

export interface PS3Config {
  readonly vision: VisionConfig;
  readonly text: TextConfig;
  readonly initLogitScale: number;
  readonly initLogitBias: number;
  /** the config exactly as read, written back unchanged when a checkpoint is saved */
  readonly raw: Record<string, unknown>;
}

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

const trunkSchema = z.object({
  patch_size: posInt,
  embed_dim: posInt,
  depth: posInt,
  num_heads: posInt,
  mlp_ratio: z.number().positive(),
  class_token: z.boolean().default(false),
  global_pool: z.literal('map').default('map'),
  act_layer: z.string().optional(),
  norm_eps: z.number().positive().default(1e-6),
  qkv_bias: z.boolean().default(true),
  img_size: posInt.optional(),
  attn_pool: z
    .object({ num_heads: posInt, mlp_ratio: z.number().positive(), latent_len: z.literal(1).default(1) })
    .optional(),
});

const visionSchema = z.object({
  model_name: z.string().nullable().default(null),
  hidden_size: posInt.optional(),
  // the reference's PS3VisionConfig defaults this to 'avg', which builds a trunk without the MAP
  // head PS3 pools with; absent here means 'map' (what every PS3 checkpoint is)
  pool: z.string().optional(),
  dynamic_img_size: z.boolean().default(true),
  img_size: posInt.nullable().default(null),
  ps3_scales: z.array(posInt).min(2).default([378, 756, 1512]),
  select_based_on_layer: z.array(nonNegInt).min(1).default([0, 9, 18, 26]),
  max_select_num: posInt.default(1280),
  max_select_num_each_scale: z.array(nonNegInt).nullable().default(null),
  separate_pos_emb: z.boolean().default(true),
  highres_selection_feature: z.boolean().default(true),
  highres_selection_module_hidden_dim: posInt.default(512),
  highres_selection_module_out_dim: posInt.default(512),
  highres_selection_module_depth: nonNegInt.default(3),
  highres_selection_module_kernel_size: posInt.default(28),
  radio: z.boolean().default(false),
  class_token: z.boolean().nullable().default(null),
  trunk: trunkSchema.optional(),
});

const textSchema = z.object({
  output_dim: posInt.default(1152),
  prompt_proj_dim: posInt.default(1152),
  context_length: posInt.default(77),
  vocab_size: posInt.default(49408),
  hf_tokenizer_name: z.string().nullable().default(null),
  tokenizer_kwargs: z.object({ clean: z.enum(['canonicalize', 'lower', 'whitespace', 'none']).optional() }).passthrough().nullable().default(null),
  width: posInt.default(512),
  heads: posInt.default(8),
  layers: posInt.default(12),
  mlp_ratio: z.number().positive().default(4),
  ls_init_value: z.null().default(null),
  embed_cls: z.literal(false).default(false),
  pad_id: nonNegInt.default(0),
  no_causal_mask: z.boolean().default(false),
  final_ln_after_pool: z.literal(false).default(false),
  pool_type: z.enum(['first', 'last', 'argmax']).default('argmax'),
  proj_bias: z.boolean().default(false),
  act_kwargs: z.object({ approximate: z.enum(['none', 'tanh']).optional() }).default({}),
  norm_kwargs: z.object({ eps: z.number().positive().optional() }).default({}),
});

const configSchema = z.object({
  model_type: z.literal('ps3'),
  vision_config: visionSchema.default(visionSchema.parse({})),
  text_config: textSchema.default(textSchema.parse({})),
  init_logit_scale: z.number().default(Math.log(10)),
  init_logit_bias: z.number().default(-10),
});

/** The released trunks, by timm name (timm's `vit_so400m_patch14_siglip_*`). */
const NAMED_TRUNKS: Record<string, TrunkConfig> = {
  vit_so400m_patch14_siglip_378: so400m(378),
  vit_so400m_patch14_siglip_384: so400m(384),
};

function so400m(imgSize: number): TrunkConfig {
  return {
    patchSize: 14,
    width: 1152,
    depth: 27,
    heads: 16,
    mlpHidden: Math.trunc(1152 * 3.7362),
    poolHeads: 16,
    poolMlpHidden: Math.trunc(1152 * 3.7362),
    qkvBias: true,
    normEps: 1e-6,
    imgSize,
  };
}

function issuePath(issue: z.core.$ZodIssue): string {
  return issue.path.length ? issue.path.map(String).join('.') : '(top level)';
}

function resolveTrunk(v: z.infer<typeof visionSchema>, where: string): TrunkConfig {
  if (v.radio || (v.model_name ?? '').toLowerCase().includes('radio')) {
    throw new UserError(`${where}: vision_config.model_name "${v.model_name}": C-RADIO trunks are not supported yet`);
  }
  if (v.pool !== undefined && v.pool !== 'map') {
    throw new UserError(`${where}: vision_config.pool "${v.pool}": PS3 pools with the trunk's MAP attention head, so only "map" can be honoured`);
  }
  if (v.class_token) throw new UserError(`${where}: vision_config.class_token: PS3 trunks have no class token`);
  if (!v.dynamic_img_size) {
    throw new UserError(`${where}: vision_config.dynamic_img_size false: PS3 resizes the position embedding to every scale, so only true can be honoured`);
  }
  if (v.trunk) {
    const t = v.trunk;
    if (t.class_token) throw new UserError(`${where}: vision_config.trunk.class_token: PS3 trunks have no class token`);
    if (t.embed_dim % t.num_heads !== 0) {
      throw new UserError(`${where}: vision_config.trunk: embed_dim ${t.embed_dim} is not divisible by num_heads ${t.num_heads}`);
    }
    const imgSize = t.img_size ?? v.img_size ?? v.ps3_scales[0]!;
    const pool = t.attn_pool ?? { num_heads: t.num_heads, mlp_ratio: t.mlp_ratio };
    return {
      patchSize: t.patch_size,
      width: t.embed_dim,
      depth: t.depth,
      heads: t.num_heads,
      mlpHidden: Math.trunc(t.embed_dim * t.mlp_ratio),
      poolHeads: pool.num_heads,
      poolMlpHidden: Math.trunc(t.embed_dim * pool.mlp_ratio),
      qkvBias: t.qkv_bias,
      normEps: t.norm_eps,
      imgSize,
    };
  }
  const named = v.model_name ? NAMED_TRUNKS[v.model_name] : undefined;
  if (!named) {
    throw new UserError(
      `${where}: vision_config.model_name "${v.model_name}" is not a known trunk (known: ${Object.keys(NAMED_TRUNKS).join(', ')}; or describe it in vision_config.trunk)`,
    );
  }
  return v.img_size ? { ...named, imgSize: v.img_size } : named;
}

/** Validate a parsed `config.json`; `where` names the file in error messages. */
export function parseConfig(json: unknown, where = 'config.json'): PS3Config {
  const raw = typeof json === 'object' && json !== null ? (json as Record<string, unknown>) : {};
  if (raw['model_type'] === 'vila-hd') {
    throw new UserError(`${where}: a VILA-HD model (model_type "vila-hd"), not a PS3 one: give its PS3 folder (ps3_model: ${JSON.stringify(raw['ps3_model'])}), or ask it questions (ps3 ask, ps3 eval qa)`);
  }
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(`${where}: field ${issuePath(issue)}: ${issue.message}`);
  }
  const c = parsed.data;
  const v = c.vision_config;
  const trunk = resolveTrunk(v, where);
  const scales = [...v.ps3_scales].sort((a, b) => a - b);
  for (const s of scales) {
    if (s % trunk.patchSize !== 0) {
      throw new UserError(`${where}: vision_config.ps3_scales: ${s} is not a multiple of the patch size ${trunk.patchSize}`);
    }
  }
  for (const s of scales.slice(1)) {
    if (s % scales[0]! !== 0) {
      throw new UserError(`${where}: vision_config.ps3_scales: ${s} is not a multiple of the low-res scale ${scales[0]}`);
    }
  }
  for (const layer of v.select_based_on_layer) {
    if (layer >= trunk.depth) {
      throw new UserError(`${where}: vision_config.select_based_on_layer: layer ${layer} does not exist (depth ${trunk.depth})`);
    }
  }
  if (v.max_select_num_each_scale && v.max_select_num_each_scale.length !== scales.length - 1) {
    throw new UserError(
      `${where}: vision_config.max_select_num_each_scale: expected ${scales.length - 1} entries (one per high-res scale), got ${v.max_select_num_each_scale.length}`,
    );
  }
  if (v.hidden_size !== undefined && v.hidden_size !== trunk.width) {
    throw new UserError(`${where}: vision_config.hidden_size ${v.hidden_size} does not match the trunk width ${trunk.width}`);
  }
  const t = c.text_config;
  if (t.width % t.heads !== 0) throw new UserError(`${where}: text_config: width ${t.width} is not divisible by heads ${t.heads}`);
  if (t.prompt_proj_dim !== trunk.width) {
    throw new UserError(`${where}: text_config.prompt_proj_dim ${t.prompt_proj_dim} must equal the vision width ${trunk.width} (the prompt is compared with vision features)`);
  }
  if (t.output_dim !== trunk.width) {
    throw new UserError(`${where}: text_config.output_dim ${t.output_dim} must equal the vision width ${trunk.width} (image and text features are compared)`);
  }
  const clean = t.tokenizer_kwargs?.clean;
  return {
    vision: {
      modelName: v.model_name ?? 'custom',
      trunk,
      scales,
      selectBasedOnLayer: v.select_based_on_layer,
      maxSelectNum: v.max_select_num,
      maxSelectNumEachScale: v.max_select_num_each_scale,
      separatePosEmb: v.separate_pos_emb,
      highresSelectionFeature: v.highres_selection_feature,
      convnet: {
        hidden: v.highres_selection_module_hidden_dim,
        out: v.highres_selection_module_out_dim,
        depth: v.highres_selection_module_depth,
        kernel: v.highres_selection_module_kernel_size,
      },
    },
    text: {
      outputDim: t.output_dim,
      promptProjDim: t.prompt_proj_dim,
      contextLength: t.context_length,
      vocabSize: t.vocab_size,
      width: t.width,
      heads: t.heads,
      layers: t.layers,
      mlpHidden: Math.trunc(t.width * t.mlp_ratio),
      causalMask: !t.no_causal_mask,
      projBias: t.proj_bias,
      poolType: t.pool_type,
      normEps: t.norm_kwargs.eps ?? 1e-5,
      geluTanh: t.act_kwargs.approximate === 'tanh',
      padId: t.pad_id,
      hfTokenizerName: t.hf_tokenizer_name,
      tokenizerClean: clean === 'canonicalize' || clean === 'lower' ? clean : 'none',
    },
    initLogitScale: c.init_logit_scale,
    initLogitBias: c.init_logit_bias,
    raw: json as Record<string, unknown>,
  };
}
