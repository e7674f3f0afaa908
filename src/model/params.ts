/**
 * The parameter table: every weight a PS3 model of a given config holds, by its released
 * checkpoint name, with its PyTorch shape. Loading is a lookup in this table, so a missing,
 * unexpected or misshaped key is an error that names the key; nothing is allocated here.
 */
import type { PS3Config } from '../io/config.js';

export type ParamTable = ReadonlyMap<string, readonly number[]>;

/** Keys of the training wrapper that a released checkpoint may carry beside the model. */
export const WRAPPER_KEYS: ParamTable = new Map([
  ['logit_scale', [1]],
  ['logit_bias', [1]],
]);

export function visionParams(config: PS3Config): Map<string, number[]> {
  const v = config.vision;
  const t = v.trunk;
  const D = t.width;
  const P = t.patchSize;
  const ns = v.scales.length - 1;
  const out = new Map<string, number[]>();
  const add = (k: string, shape: number[]): void => void out.set(`vision_model.${k}`, shape);
  const linear = (k: string, outDim: number, inDim: number, bias = true): void => {
    add(`${k}.weight`, [outDim, inDim]);
    if (bias) add(`${k}.bias`, [outDim]);
  };
  const norm = (k: string, dim: number): void => {
    add(`${k}.weight`, [dim]);
    add(`${k}.bias`, [dim]);
  };
  add('trunk.patch_embed.proj.weight', [D, 3, P, P]);
  add('trunk.patch_embed.proj.bias', [D]);
  add('trunk.pos_embed', [1, Math.floor(t.imgSize / P) ** 2, D]);
  for (let i = 0; i < t.depth; i++) {
    const b = `trunk.blocks.${i}`;
    norm(`${b}.norm1`, D);
    linear(`${b}.attn.qkv`, 3 * D, D, t.qkvBias);
    linear(`${b}.attn.proj`, D, D);
    norm(`${b}.norm2`, D);
    linear(`${b}.mlp.fc1`, t.mlpHidden, D);
    linear(`${b}.mlp.fc2`, D, t.mlpHidden);
  }
  norm('trunk.norm', D);
  add('trunk.attn_pool.latent', [1, 1, D]);
  linear('trunk.attn_pool.q', D, D);
  linear('trunk.attn_pool.kv', 2 * D, D);
  linear('trunk.attn_pool.proj', D, D);
  norm('trunk.attn_pool.norm', D);
  linear('trunk.attn_pool.mlp.fc1', t.poolMlpHidden, D);
  linear('trunk.attn_pool.mlp.fc2', D, t.poolMlpHidden);
  const sel = D * v.selectBasedOnLayer.length;
  linear('selection_feature_proj.fc1', sel, sel);
  norm('selection_feature_proj.norm', sel);
  linear('selection_feature_proj.fc2', D * ns, sel);
  add('prior_prompt', [D]);
  if (v.separatePosEmb) {
    v.scales.slice(1).forEach((s, i) => add(`pos_emb_residual.${i}`, [1, Math.floor(s / P) ** 2, D]));
  }
  if (v.highresSelectionFeature) {
    const c = v.convnet;
    const m = 'highres_selection_feature_module';
    add(`${m}.stem.0.weight`, [c.hidden, 3, c.kernel, c.kernel]);
    add(`${m}.stem.0.bias`, [c.hidden]);
    norm(`${m}.stem.1`, c.hidden);
    for (let i = 0; i < c.depth; i++) {
      const b = `${m}.blocks.${i}`;
      add(`${b}.conv_dw.weight`, [c.hidden, 1, 7, 7]);
      add(`${b}.conv_dw.bias`, [c.hidden]);
      norm(`${b}.norm`, c.hidden);
      linear(`${b}.mlp.fc1`, 4 * c.hidden, c.hidden);
      linear(`${b}.mlp.fc2`, c.hidden, 4 * c.hidden);
      add(`${b}.weight`, [c.hidden]);
    }
    add(`${m}.out_proj.weight`, [c.out, c.hidden, 1, 1]);
    add(`${m}.out_proj.bias`, [c.out]);
    linear('prompt_proj_for_highres', c.out * ns, D);
  }
  return out;
}

export function textParams(config: PS3Config): Map<string, number[]> {
  const t = config.text;
  const W = t.width;
  const out = new Map<string, number[]>();
  const add = (k: string, shape: number[]): void => void out.set(`text_model.${k}`, shape);
  const norm = (k: string, dim: number): void => {
    add(`${k}.weight`, [dim]);
    add(`${k}.bias`, [dim]);
  };
  add('token_embedding.weight', [t.vocabSize, W]);
  add('positional_embedding', [t.contextLength, W]);
  for (let i = 0; i < t.layers; i++) {
    const b = `transformer.resblocks.${i}`;
    norm(`${b}.ln_1`, W);
    add(`${b}.attn.in_proj_weight`, [3 * W, W]);
    add(`${b}.attn.in_proj_bias`, [3 * W]);
    add(`${b}.attn.out_proj.weight`, [W, W]);
    add(`${b}.attn.out_proj.bias`, [W]);
    norm(`${b}.ln_2`, W);
    add(`${b}.mlp.c_fc.weight`, [t.mlpHidden, W]);
    add(`${b}.mlp.c_fc.bias`, [t.mlpHidden]);
    add(`${b}.mlp.c_proj.weight`, [W, t.mlpHidden]);
    add(`${b}.mlp.c_proj.bias`, [W]);
  }
  norm('ln_final', W);
  if (t.projBias) {
    add('text_projection.weight', [t.outputDim, W]);
    add('text_projection.bias', [t.outputDim]);
  } else {
    // open_clip stores a bias-free projection as a bare [width, output_dim] parameter
    add('text_projection', [W, t.outputDim]);
  }
  add('prompt_proj.fc1.weight', [t.promptProjDim, t.outputDim]);
  add('prompt_proj.fc1.bias', [t.promptProjDim]);
  norm('prompt_proj.norm', t.promptProjDim);
  add('prompt_proj.fc2.weight', [t.promptProjDim, t.promptProjDim]);
  add('prompt_proj.fc2.bias', [t.promptProjDim]);
  return out;
}

/** Every parameter of the full model (vision and text towers). */
export function paramTable(config: PS3Config): Map<string, number[]> {
  return new Map([...visionParams(config), ...textParams(config)]);
}

export function countParams(table: ParamTable): number {
  let n = 0;
  for (const shape of table.values()) n += shape.reduce((a, c) => a * c, 1);
  return n;
}
