/**
 * An endless stream of freshly drawn synthetic scenes (data/scene/render.ts) as training samples,
 * instead of a data set's shards: sample i is scene i of the stream's seed, drawn at the top
 * scale, so no scene is ever seen twice and a resumed run sees exactly the scenes an
 * uninterrupted one would. A trunk trained on a fixed set of scenes can fit their small
 * characters window by window without learning to read new ones; a stream it never repeats
 * leaves it nothing to fit but reading.
 */
import { Rng } from '../rng.js';
import { sceneRng, sampleKey } from '../data/synth.js';
import { renderScene } from '../data/scene/render.js';
import { HELDOUT_SEED_BASE } from '../data/qa/generate.js';
import { UserError } from '../errors.js';
import { sampleFromImage, type TrainSample } from './samples.js';
import { sampleOptions, sampleSeed, withResizes, type StreamOptions } from './sampleStream.js';

/** Which scenes a synth stream draws: their seed (below the held-out base) and local captions a scene. */
export interface SynthStreamSpec {
  readonly seed: number;
  readonly captions: readonly [number, number];
}

/**
 * `synth` or `synth:SEED` (`--data`): a synth stream's seed, or null when `value` names a folder.
 * The seed must be below the held-out base, so training never draws an evaluation scene's seed.
 */
export function parseSynthData(value: string): number | null {
  const m = /^synth(?::(.*))?$/.exec(value);
  if (!m) return null;
  const seed = m[1] === undefined ? 0 : /^\d+$/.test(m[1]) ? Number(m[1]) : NaN;
  if (!Number.isSafeInteger(seed) || seed >= HELDOUT_SEED_BASE) throw new UserError(`--data ${value}: the synth stream's seed must be an integer from 0 to ${HELDOUT_SEED_BASE - 1} (held-out scenes use ${HELDOUT_SEED_BASE} and up)`);
  return seed;
}

/** The run's samples from scene `skip` on; `seed` (the run's) draws each sample's augmentation as for shards. */
export function synthSampleSource(spec: SynthStreamSpec, seed: number, skip: number, options: StreamOptions): { next(): Promise<TrainSample>; readonly seen: number; summary(): string } {
  let index = skip;
  return {
    get seen() {
      return index;
    },
    summary() {
      return `synth: scenes ${skip} to ${index - 1} of seed ${spec.seed} drawn (${index - skip} this run, each once)`;
    },
    async next(): Promise<TrainSample> {
      const i = index++;
      const S = options.size;
      const scene = renderScene(sceneRng(spec.seed, i), { width: S, height: S }, spec.captions);
      const annotation = { text: scene.regions.map((r) => r.caption), box: scene.regions.map((r) => r.box), globalText: scene.globalCaption };
      const image = { data: scene.rgb, width: S, height: S };
      return withResizes(sampleFromImage(sampleKey(i), annotation, image, new Rng(sampleSeed(seed, i)), sampleOptions(options), options.pool), options);
    },
  };
}
