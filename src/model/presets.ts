/**
 * Named model shapes, as `config.json` objects: the released PS3 shapes and smaller ones for
 * demos, benchmarks and training from scratch. Any of them can be built with random weights.
 */
import { parseConfig, type PS3Config } from '../io/config.js';
import { UserError } from '../errors.js';

type Json = Record<string, unknown>;

function vitTrunk(width: number, depth: number, heads: number): Json {
  return { patch_size: 14, embed_dim: width, depth, num_heads: heads, mlp_ratio: 4, class_token: false, global_pool: 'map', norm_eps: 1e-6, qkv_bias: true };
}

// the reference's PS3VisionConfig defaults pool to 'avg' and hidden_size to 1152: spelled out
function preset(vision: Json, text: Json): Json {
  const trunk = vision['trunk'] as { embed_dim: number } | undefined;
  const shape = { hidden_size: trunk?.embed_dim ?? 1152, pool: 'map', class_token: false };
  return { model_type: 'ps3', vision_config: { ...shape, ...vision }, text_config: text, init_logit_scale: Math.log(10), init_logit_bias: -10 };
}

const SIGLIP_TEXT = {
  output_dim: 1152, prompt_proj_dim: 1152, context_length: 64, vocab_size: 32000, width: 1152, heads: 16, layers: 27,
  mlp_ratio: 3.7362, no_causal_mask: true, proj_bias: true, pool_type: 'last', norm_kwargs: { eps: 1e-6 }, act_kwargs: {},
  tokenizer_kwargs: { clean: 'canonicalize' },
};

/**
 * The small presets' text tower, for the synthetic captions' word tokenizer: CLIP's layout (causal
 * mask, pooled at the end-of-text token, which has the highest id). SigLIP's layout (no mask,
 * pooled at the last slot whatever the padding) left a small tower from scratch unable to tell
 * captions apart: the last slot is padding, and the caption reaches it diluted by the padding.
 */
function smallText(width: number, layers: number, heads: number): Json {
  return {
    output_dim: width, prompt_proj_dim: width, context_length: 32, vocab_size: 4096, width, heads, layers, mlp_ratio: 4,
    no_causal_mask: false, proj_bias: true, pool_type: 'argmax', norm_kwargs: { eps: 1e-6 }, act_kwargs: {}, tokenizer_kwargs: { clean: 'canonicalize' },
  };
}

function b14(scales: number[]): Json {
  return preset(
    {
      model_name: 'vit_base_patch14', img_size: 378, ps3_scales: scales, select_based_on_layer: [0, 4, 8, 11], max_select_num: 2560,
      separate_pos_emb: true, highres_selection_feature: true, highres_selection_module_hidden_dim: 256, highres_selection_module_out_dim: 256,
      highres_selection_module_depth: 3, highres_selection_module_kernel_size: 28, trunk: vitTrunk(768, 12, 12),
    },
    smallText(768, 12, 12),
  );
}

export const PRESETS: Record<string, { readonly description: string; readonly config: Json }> = {
  'so400m-4k': {
    description: 'the released PS3-4K-SigLIP shapes (so400m trunk, scales 378-3780, 2560 patches a look)',
    config: preset(
      {
        model_name: 'vit_so400m_patch14_siglip_384', hidden_size: 1152, pool: 'map', img_size: 378, ps3_scales: [378, 756, 1512, 3780],
        select_based_on_layer: [0, 9, 18, 26], max_select_num: 2560, separate_pos_emb: true, highres_selection_feature: true,
        highres_selection_module_hidden_dim: 512, highres_selection_module_out_dim: 512, highres_selection_module_depth: 3, highres_selection_module_kernel_size: 28,
      },
      SIGLIP_TEXT,
    ),
  },
  'so400m-1.5k': {
    description: 'the released PS3-1.5K-SigLIP shapes (so400m trunk, scales 378-1512, 2560 patches a look)',
    config: preset(
      {
        model_name: 'vit_so400m_patch14_siglip_384', hidden_size: 1152, pool: 'map', img_size: 378, ps3_scales: [378, 756, 1512],
        select_based_on_layer: [0, 9, 18, 26], max_select_num: 2560, separate_pos_emb: true, highres_selection_feature: true,
        highres_selection_module_hidden_dim: 512, highres_selection_module_out_dim: 512, highres_selection_module_depth: 3, highres_selection_module_kernel_size: 28,
      },
      SIGLIP_TEXT,
    ),
  },
  'b14-4k': { description: 'ViT-B/14 trunk (768 wide, 12 deep), scales 378-3780, 2560 patches a look', config: b14([378, 756, 1512, 3780]) },
  'b14-1.5k': { description: 'ViT-B/14 trunk (768 wide, 12 deep), scales 378-1512, 2560 patches a look', config: b14([378, 756, 1512]) },
  micro: {
    description: 'a minute model for tests (32 wide, 2 deep), scales 56-224, 24 patches a look',
    config: preset(
      {
        model_name: 'vit_micro_patch14', img_size: 56, ps3_scales: [56, 112, 224], select_based_on_layer: [0, 1], max_select_num: 24,
        separate_pos_emb: true, highres_selection_feature: true, highres_selection_module_hidden_dim: 8, highres_selection_module_out_dim: 8,
        highres_selection_module_depth: 1, highres_selection_module_kernel_size: 28, trunk: vitTrunk(32, 2, 2),
      },
      { ...smallText(32, 1, 2), context_length: 16 },
    ),
  },
  'tiny-4k': {
    description: 'a small 4K-capable model (128 wide, 4 deep), scales 378-3780, 640 patches a look: quick on 2 cores',
    config: preset(
      {
        model_name: 'vit_tiny_patch14', img_size: 378, ps3_scales: [378, 756, 1512, 3780], select_based_on_layer: [1, 3], max_select_num: 640,
        separate_pos_emb: true, highres_selection_feature: true, highres_selection_module_hidden_dim: 32, highres_selection_module_out_dim: 32,
        highres_selection_module_depth: 1, highres_selection_module_kernel_size: 28, trunk: vitTrunk(128, 4, 4),
      },
      smallText(128, 2, 4),
    ),
  },
};

// the same model at a 1512 top scale: a cheaper first stage of a resolution curriculum
PRESETS['tiny-1.5k'] = {
  description: 'tiny-4k with scales 378-1512 (128 wide, 4 deep, 640 patches a look): the first stage of a resolution curriculum',
  config: { ...PRESETS['tiny-4k']!.config, vision_config: { ...(PRESETS['tiny-4k']!.config['vision_config'] as Json), ps3_scales: [378, 756, 1512] } },
};

// tiny with the selection ConvNeXt four times as wide and two blocks deep: PS3-tiny's 32-channel,
// one-block module sees objects smaller than its 28 px stem patch at 1512 px (the released
// models' module: 512 channels, 3 blocks)
const wideSelection = (base: Json): Json => ({ ...base, highres_selection_module_hidden_dim: 128, highres_selection_module_out_dim: 128, highres_selection_module_depth: 2 });
PRESETS['tiny-wide-select'] = {
  description: 'tiny-4k with a 128-channel, 2-block selection ConvNeXt (tiny\'s: 32 channels, 1 block)',
  config: { ...PRESETS['tiny-4k']!.config, vision_config: wideSelection(PRESETS['tiny-4k']!.config['vision_config'] as Json) },
};
PRESETS['tiny-wide-select-1.5k'] = {
  description: 'tiny-wide-select with scales 378-1512: the first stage of its resolution curriculum',
  config: { ...PRESETS['tiny-1.5k']!.config, vision_config: wideSelection(PRESETS['tiny-1.5k']!.config['vision_config'] as Json) },
};

// tiny with a selection ConvNeXt whose stem is 14 px at 1512 (tiny's: 28), 64 channels, 2 blocks:
// the evidence objects measure 13-34 px at 1512, so the 28 px stem sees most of them as a fraction
// of one patch; the 108 x 108 map is max-pooled to the low-res grid as before. Grown onto a trained
// tiny (`train --init DIR --preset tiny-fine-select`), the new module starts fresh.
const fineSelection = (base: Json): Json => ({ ...base, highres_selection_module_kernel_size: 14, highres_selection_module_hidden_dim: 64, highres_selection_module_out_dim: 64, highres_selection_module_depth: 2 });
PRESETS['tiny-fine-select'] = {
  description: 'tiny-4k with a 14 px, 64-channel, 2-block selection ConvNeXt (tiny\'s: 28 px, 32 channels, 1 block)',
  config: { ...PRESETS['tiny-4k']!.config, vision_config: fineSelection(PRESETS['tiny-4k']!.config['vision_config'] as Json) },
};

// `tiny` is the name the trainer's docs use for the 4K-capable small model
PRESETS['tiny'] = { ...PRESETS['tiny-4k']!, description: `same as tiny-4k: ${PRESETS['tiny-4k']!.description}` };

export function presetConfig(name: string): PS3Config {
  const p = PRESETS[name];
  if (!p) throw new UserError(`unknown preset "${name}" (known: ${Object.keys(PRESETS).join(', ')})`);
  return parseConfig(structuredClone(p.config), `preset ${name}`);
}
