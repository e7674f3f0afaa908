/**
 * VILA-HD's parameter table: for each method the folder holds, an LM, a projector from that
 * method's vision tokens to the LM width, and (for `ps3`) the prompt head. Keys are prefixed by
 * the method (`ps3.lm.blocks.0.attn.qkv.weight`), so one `model.safetensors` holds them all.
 */
import type { PS3Config } from '../io/config.js';
import type { EncodeMethod } from '../model/baselines.js';
import type { ParamTable } from '../model/params.js';
import { lmConfigOf, type LmConfig, type VilaConfig } from './config.js';

/** Vision width a method's projector takes per token (before the 2 x 2 merge). */
export function visionWidth(method: EncodeMethod, ps3: PS3Config): number {
  const D = ps3.vision.trunk.width;
  // S²: every scale's feature map pooled to the low-res grid, channels side by side
  return method === 's2' ? D * ps3.vision.scales.length : D;
}

/** The key of a method's learned positions, [context length, width]. */
export function positionsKey(method: EncodeMethod): string {
  return `${method}.lm.embed_positions.weight`;
}

function lmParams(p: string, c: LmConfig, out: Map<string, number[]>): void {
  const W = c.width;
  out.set(`${p}.embed_tokens.weight`, [c.vocabSize, W]);
  out.set(`${p}.embed_positions.weight`, [c.contextLength, W]);
  for (let i = 0; i < c.layers; i++) {
    const b = `${p}.blocks.${i}`;
    out.set(`${b}.norm1.weight`, [W]);
    out.set(`${b}.norm1.bias`, [W]);
    out.set(`${b}.attn.qkv.weight`, [3 * W, W]);
    out.set(`${b}.attn.qkv.bias`, [3 * W]);
    out.set(`${b}.attn.proj.weight`, [W, W]);
    out.set(`${b}.attn.proj.bias`, [W]);
    out.set(`${b}.norm2.weight`, [W]);
    out.set(`${b}.norm2.bias`, [W]);
    out.set(`${b}.mlp.fc1.weight`, [c.mlpHidden, W]);
    out.set(`${b}.mlp.fc1.bias`, [c.mlpHidden]);
    out.set(`${b}.mlp.fc2.weight`, [W, c.mlpHidden]);
    out.set(`${b}.mlp.fc2.bias`, [W]);
  }
  out.set(`${p}.norm.weight`, [W]);
  out.set(`${p}.norm.bias`, [W]);
  if (!c.tieWordEmbeddings) out.set(`${p}.head.weight`, [c.vocabSize, W]);
}

/** One method's keys (its LM's positions as long as that method's context). */
export function methodParams(method: EncodeMethod, config: VilaConfig, ps3: PS3Config): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const W = config.lm.width;
  lmParams(`${method}.lm`, lmConfigOf(config, method), out);
  const din = 4 * visionWidth(method, ps3);
  const P = config.projectorHidden;
  out.set(`${method}.projector.pre_norm.weight`, [din]);
  out.set(`${method}.projector.pre_norm.bias`, [din]);
  out.set(`${method}.projector.fc1.weight`, [P, din]);
  out.set(`${method}.projector.fc1.bias`, [P]);
  out.set(`${method}.projector.fc2.weight`, [W, P]);
  out.set(`${method}.projector.fc2.bias`, [W]);
  if (method === 'ps3') {
    const H = config.promptHidden;
    out.set('ps3.prompt_head.pre_norm.weight', [W]);
    out.set('ps3.prompt_head.pre_norm.bias', [W]);
    out.set('ps3.prompt_head.fc1.weight', [H, W]);
    out.set('ps3.prompt_head.fc1.bias', [H]);
    out.set('ps3.prompt_head.fc2.weight', [ps3.vision.trunk.width, H]);
    out.set('ps3.prompt_head.fc2.bias', [ps3.vision.trunk.width]);
  }
  return out;
}

export function vilaParams(config: VilaConfig, ps3: PS3Config): ParamTable {
  const out = new Map<string, number[]>();
  for (const m of config.methods) for (const [k, s] of methodParams(m, config, ps3)) out.set(k, s);
  return out;
}
