/**
 * `config.json` as written into every model folder the project makes: the config as read, with
 * every field the reference's `PS3VisionConfig` / `PS3TextConfig` constructors take set to the
 * value this model really has. A field left out would be filled with the reference's default,
 * which differs from ours for several (`pool` 'avg' builds a trunk without the MAP head,
 * `hidden_size` 1152, `norm_kwargs` {} means eps 1e-5, `tokenizer_kwargs` null means 'whitespace'
 * cleaning, ...). `test/data/official/` pins the names and values.
 */
import type { PS3Config } from './config.js';

type Json = Record<string, unknown>;

function objectAt(raw: Json, key: string): Json {
  const v = raw[key];
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

/** open_clip's clean names: our 'none' is its 'whitespace' (the reference asserts on 'none'). */
export function openClipClean(clean: PS3Config['text']['tokenizerClean']): 'canonicalize' | 'lower' | 'whitespace' {
  return clean === 'none' ? 'whitespace' : clean;
}

/**
 * A timm name for a trunk spelled out only in `vision_config.trunk`: the reference builds every
 * trunk with `timm.create_model(model_name)`, so the name must exist (see the README).
 */
function customTrunkName(c: PS3Config): string {
  const t = c.vision.trunk;
  return `vit_ps3_custom_patch${t.patchSize}_w${t.width}_d${t.depth}`;
}

export function officialConfigJson(c: PS3Config): Json {
  const raw = c.raw;
  const rawVision = objectAt(raw, 'vision_config');
  const rawText = objectAt(raw, 'text_config');
  const v = c.vision;
  const t = c.text;
  const vision: Json = {
    ...rawVision,
    architectures: ['PS3VisionModel'],
    model_type: 'ps3_vision_model',
    model_name: typeof rawVision['model_name'] === 'string' ? rawVision['model_name'] : customTrunkName(c),
    hidden_size: v.trunk.width,
    pool: 'map',
    drop_path: rawVision['drop_path'] ?? null,
    patch_drop: rawVision['patch_drop'] ?? null,
    pretrained: false,
    dynamic_img_size: true,
    ps3_scales: [...v.scales],
    select_based_on_layer: [...v.selectBasedOnLayer],
    max_select_num: v.maxSelectNum,
    max_select_num_each_scale: v.maxSelectNumEachScale ? [...v.maxSelectNumEachScale] : null,
    separate_pos_emb: v.separatePosEmb,
    highres_selection_feature: v.highresSelectionFeature,
    highres_selection_module_hidden_dim: v.convnet.hidden,
    highres_selection_module_out_dim: v.convnet.out,
    highres_selection_module_depth: v.convnet.depth,
    highres_selection_module_kernel_size: v.convnet.kernel,
    radio: false,
    img_size: v.trunk.imgSize,
    drop: rawVision['drop'] ?? 0,
    class_token: false,
    final_norm: false,
  };
  const rawKwargs = objectAt(rawText, 'tokenizer_kwargs');
  const text: Json = {
    ...rawText,
    architectures: ['PS3TextModel'],
    model_type: 'ps3_text_model',
    output_dim: t.outputDim,
    prompt_proj_dim: t.promptProjDim,
    context_length: t.contextLength,
    vocab_size: t.vocabSize,
    hf_tokenizer_name: t.hfTokenizerName,
    tokenizer_kwargs: { ...rawKwargs, clean: openClipClean(t.tokenizerClean) },
    width: t.width,
    heads: t.heads,
    layers: t.layers,
    mlp_ratio: typeof rawText['mlp_ratio'] === 'number' ? rawText['mlp_ratio'] : 4,
    ls_init_value: null,
    embed_cls: false,
    pad_id: t.padId,
    no_causal_mask: !t.causalMask,
    final_ln_after_pool: false,
    pool_type: t.poolType,
    proj_bias: t.projBias,
    output_tokens: false,
    act_kwargs: t.geluTanh ? { approximate: 'tanh' } : {},
    norm_kwargs: { eps: t.normEps },
  };
  return {
    ...raw,
    architectures: ['PS3Model'],
    model_type: 'ps3',
    vision_config: vision,
    text_config: text,
    init_logit_scale: c.initLogitScale,
    init_logit_bias: c.initLogitBias,
  };
}
