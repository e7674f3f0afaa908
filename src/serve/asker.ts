/**
 * VILA-HD behind the server: image bytes and a question in, the answer out, as `ps3 ask`
 * answers it (src/mllm/answer.ts), on the PS3 the encoder has loaded (one copy of its weights).
 */
import { loadPixelValues } from '../io/image.js';
import { UserError } from '../errors.js';
import { parseMethod, type EncodeMethod } from '../model/baselines.js';
import type { PS3Model } from '../model/load.js';
import { answerQuestion } from '../mllm/answer.js';
import { loadVilaHd, type VilaHd } from '../mllm/model.js';

export interface AskRequest {
  readonly question: string;
  /** answers to choose from; without, the LM writes its answer */
  readonly options?: readonly string[];
  /** whose tokens the LM reads (default ps3 when the folder has it) */
  readonly method?: string;
  /** ps3: looks, or a high-res token budget */
  readonly looks?: number;
  readonly tokens?: number;
}

export interface AskResult {
  readonly answer: string;
  /** the chosen option's index (null without options) */
  readonly option: number | null;
  /** log-likelihood per option */
  readonly scores: number[] | null;
  readonly method: EncodeMethod;
  readonly trunkTokens: number;
  readonly visualTokens: number;
  /** ps3: high-res patches chosen per high-res scale */
  readonly looked: Array<{ scale: number; patches: number }> | null;
  readonly ms: number;
}

const MEAN = [0.5, 0.5, 0.5] as const;
const STD = [0.5, 0.5, 0.5] as const;

export class Asker {
  private constructor(readonly model: VilaHd, private readonly maxPixels: number) {}

  /** The VILA-HD folder `dir` on `ps3`, its PS3 as the encoder loaded it; every problem is a UserError. */
  static load(dir: string, ps3: PS3Model, maxPixels: number): Asker {
    return new Asker(loadVilaHd(dir, { ps3 }), maxPixels);
  }

  get methods(): readonly EncodeMethod[] {
    return this.model.config.methods;
  }

  async ask(bytes: Uint8Array, r: AskRequest): Promise<AskResult> {
    const method = r.method !== undefined ? parseMethod(r.method) : this.methods.includes('ps3') ? 'ps3' : this.methods[0]!;
    if (!this.methods.includes(method)) throw new UserError(`this VILA-HD folder holds no LM for method "${method}" (it has ${this.methods.join(', ')})`);
    if (r.looks !== undefined && r.tokens !== undefined) throw new UserError('give looks or tokens, not both');
    if (method !== 'ps3' && (r.looks !== undefined || r.tokens !== undefined)) throw new UserError(`looks and tokens choose PS3's looks; method ${method} does not look`);
    if (r.options && (r.options.length < 2 || r.options.some((o) => o.trim() === ''))) throw new UserError('options must be two or more non-empty answers');
    const cfg = this.model.ps3.config.vision;
    const S = cfg.scales[cfg.scales.length - 1]!;
    const t0 = performance.now();
    const pv = await loadPixelValues(bytes, { size: S, mean: MEAN, std: STD, maxPixels: this.maxPixels, name: 'image' });
    const look = r.tokens !== undefined ? { tokens: r.tokens } : r.looks !== undefined ? { looks: r.looks } : {};
    const a = await answerQuestion(this.model, method, { data: pv.pixels, batch: 1, height: S, width: S }, r.question, r.options, look);
    a.visual?.merged.dispose();
    const looked = a.selection ? a.selection.maps.map((m, i) => ({ scale: cfg.scales[i + 1]!, patches: m.data.reduce((n, v) => n + (v ? 1 : 0), 0) })) : null;
    return {
      answer: a.text, option: r.options ? a.predicted : null, scores: r.options ? a.scores : null, method,
      trunkTokens: a.trunkTokens, visualTokens: a.visualTokens, looked, ms: performance.now() - t0,
    };
  }

  /** Frees the LMs' weights (the PS3 is the encoder's). */
  close(): void {
    this.model.weights.dispose();
  }
}
