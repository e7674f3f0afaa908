/**
 * Synthetic high-resolution detail scenes for pre-training and evaluating PS3 without real data:
 * a textured, cluttered background with small objects (0.5-4 % of the long side) whose colour,
 * shape, digits and sign codes can only be read at high resolution, look-alike distractors next to
 * them, and local (box, caption) pairs plus one global caption that are true of the pixels
 * (regions.ts, globalCaption.ts).
 *
 * Scenes are a pure function of the Rng they are given, and their structure does not depend on
 * the resolution (sizes are fractions of the long side), so a 512 px test scene is a small 4K
 * scene. The order of the steps below is the order of Rng draws: changing it changes every scene
 * (bump SYNTH_VERSION in synth.ts).
 */
import type { Rng } from '../../rng.js';
import { createCanvas, type Box } from '../draw.js';
import { paintBackground } from './background.js';
import { paintClutter } from './clutter.js';
import { drawObjects } from './drawObjects.js';
import { globalCaption } from './globalCaption.js';
import { planObjects } from './plan.js';
import { chooseRegions, regionCandidates } from './regions.js';
import type { Scene, SceneSize } from './types.js';

/** How many local captions a scene gets unless asked otherwise: drawn uniformly from 4 to 8. */
export const DEFAULT_CAPTIONS: readonly [number, number] = [4, 8];

/**
 * Renders one scene; the same Rng state, size and caption range give the same scene, pixel for
 * pixel. `captions` [min, max]: its local captions are drawn from that range (of the 60-90 each
 * scene could be described by), so denser captions give pre-training more pairs an image.
 */
export function renderScene(rng: Rng, size: SceneSize, captions: readonly [number, number] = DEFAULT_CAPTIONS): Scene {
  const { width, height } = size;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 32 || height < 32) {
    throw new RangeError(`renderScene: size must be whole pixels of at least 32, got ${width} x ${height}`);
  }
  const long = Math.max(width, height);
  const canvas = createCanvas(width, height);
  const background = paintBackground(canvas, rng, long);
  const plans = planObjects(canvas, rng, long);
  paintClutter(canvas, rng, long, plans.map((p) => [p.cx - p.hw, p.cy - p.hh, p.cx + p.hw, p.cy + p.hh] as Box));
  const objects = drawObjects(canvas, rng, plans);
  const regions = chooseRegions(rng, regionCandidates(rng, objects), rng.int(captions[0], captions[1]));
  return { rgb: canvas.rgb, width, height, objects, regions, globalCaption: globalCaption(rng, objects, background) };
}
