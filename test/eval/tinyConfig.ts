/** The small PS3 config the evaluation tests share. */
import { parseConfig, type PS3Config } from '../../src/io/config.js';

/** Scales 56/112/224, patch 14: N0 = 16; 2 blocks of width 32; 32 high-res patches a look. */
export function tinyConfig(): PS3Config {
  return parseConfig({
    model_type: 'ps3',
    vision_config: {
      model_name: 'vit_test', ps3_scales: [56, 112, 224], select_based_on_layer: [0, 1], max_select_num: 32, separate_pos_emb: true, highres_selection_feature: false,
      trunk: { patch_size: 14, embed_dim: 32, depth: 2, num_heads: 2, mlp_ratio: 2, class_token: false, global_pool: 'map', norm_eps: 1e-6, qkv_bias: true },
    },
    text_config: {
      output_dim: 32, prompt_proj_dim: 32, context_length: 16, vocab_size: 256, width: 32, heads: 2, layers: 1, mlp_ratio: 2, no_causal_mask: true,
      proj_bias: true, pool_type: 'last', norm_kwargs: { eps: 1e-6 }, act_kwargs: {}, tokenizer_kwargs: { clean: 'canonicalize' },
    },
  }, 'tiny test config');
}
