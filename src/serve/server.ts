/**
 * The HTTP API over one loaded encoder (fastify): POST /v1/encode, POST /v1/similarity,
 * GET /healthz, GET /metrics, and POST /v1/ask when a VILA-HD folder was loaded. Requests are validated by schema; the work goes through a bounded
 * queue (503 with Retry-After beyond it); bodies and images over the limits get 413; a bad image
 * or option gets 400 with one line; a client that goes away before its turn leaves the queue.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import sharp from 'sharp';
import { isUserError, UserError } from '../errors.js';
import { ENCODE_METHODS } from '../model/baselines.js';
import type { Asker } from './asker.js';
import type { Encoder, EncodeRequest } from './encoder.js';
import { serverMetrics } from './metrics.js';
import { AbortedError, QueueFullError, WorkQueue } from './workQueue.js';

export interface ServerLimits {
  /** largest request body (raw or multipart image) in bytes */
  readonly maxBodyBytes: number;
  /** largest image in pixels, by its header */
  readonly maxPixels: number;
  /** requests waiting for the encoder at most */
  readonly maxQueue: number;
  /** encodes at once (one model, so 1 unless the trunk engine runs beside the main thread) */
  readonly concurrency: number;
}

/** Counts the shutdown report gives: every accepted request is answered, or its client left. */
export interface ServerStats {
  accepted: number;
  answered: number;
  abandoned: number;
  refused: number;
}

const LOOK_PROPERTIES = {
  looks: { type: 'integer', minimum: 0, maximum: 10000 },
  tokens: { type: 'integer', minimum: 0 },
  all: { type: 'boolean' },
  scales: { type: 'integer', minimum: 1 },
} as const;

const ENCODE_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...LOOK_PROPERTIES,
    prompt: { type: 'string', minLength: 1, maxLength: 2000 },
    format: { type: 'string', enum: ['json', 'safetensors', 'png'] },
    scale: { type: 'integer', minimum: 1 },
  },
} as const;

const SIMILARITY_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...LOOK_PROPERTIES,
    text: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 2000 }, maxItems: 64 },
  },
} as const;

const ASK_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    question: { type: 'string', minLength: 1, maxLength: 2000 },
    options: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 200 }, minItems: 2, maxItems: 16 },
    method: { type: 'string', enum: [...ENCODE_METHODS] },
    looks: LOOK_PROPERTIES.looks,
    tokens: LOOK_PROPERTIES.tokens,
  },
} as const;

interface AskQuery {
  question?: string;
  options?: string[];
  method?: string;
  looks?: number;
  tokens?: number;
}

interface LookQuery {
  looks?: number;
  tokens?: number;
  all?: boolean;
  scales?: number;
}

interface EncodeQuery extends LookQuery {
  prompt?: string;
  format?: 'json' | 'safetensors' | 'png';
  scale?: number;
}

interface SimilarityQuery extends LookQuery {
  text?: string[];
}

/** An HTTP answer other than 200 with its one-line reason. */
class HttpError extends Error {
  constructor(readonly statusCode: number, message: string) {
    super(message);
  }
}

const NO_IMAGE = 'send the image as the request body (Content-Type image/* or application/octet-stream) or as the multipart field "image"';

/** The image bytes and text fields of a request: a raw body, or multipart with the file field `image`. */
async function readUpload(req: FastifyRequest): Promise<{ bytes: Buffer; fields: Map<string, string[]> }> {
  const fields = new Map<string, string[]>();
  if (!req.isMultipart()) {
    if (!Buffer.isBuffer(req.body)) throw new HttpError(400, NO_IMAGE);
    return { bytes: req.body, fields };
  }
  let bytes: Buffer | undefined;
  for await (const part of req.parts()) {
    if (part.type === 'file') {
      const data = await part.toBuffer();
      if (part.fieldname !== 'image') throw new HttpError(400, `unexpected file field "${part.fieldname}" (the image goes in "image")`);
      bytes = data;
    } else {
      fields.set(part.fieldname, [...(fields.get(part.fieldname) ?? []), String(part.value)]);
    }
  }
  if (!bytes) throw new HttpError(400, NO_IMAGE);
  return { bytes, fields };
}

/** 413 for an image whose header claims more pixels than the limit; a corrupt header is left to the decoder's 400. */
async function checkPixels(bytes: Buffer, maxPixels: number): Promise<void> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    return;
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > maxPixels) throw new HttpError(413, `image is ${meta.width}x${meta.height} = ${pixels} pixels, more than the limit of ${maxPixels}`);
}

/** An AbortSignal that fires when the client closes the connection before its answer is sent. */
function clientGone(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableEnded) ac.abort();
  });
  return ac.signal;
}

/** The first schema violation as one line naming the option. */
function validationMessage(error: FastifyError): string {
  const v = error.validation?.[0];
  if (!v) return oneLine(error.message);
  const extra = (v.params as { additionalProperty?: unknown }).additionalProperty;
  if (typeof extra === 'string') return `unknown option "${extra}"`;
  return `option ${v.instancePath.replace(/^\//, '').replace(/\/\d+$/, '')} ${v.message ?? 'is invalid'}`;
}

function oneLine(message: string): string {
  return message.split('\n')[0]!.trim();
}

/** `asker`: VILA-HD, which answers POST /v1/ask (without it that route is not served). */
export function buildServer(encoder: Encoder, limits: ServerLimits, asker?: Asker): { app: FastifyInstance; stats: ServerStats; queue: WorkQueue } {
  const routes = `routes: POST /v1/encode, POST /v1/similarity, ${asker ? 'POST /v1/ask, ' : ''}GET /healthz, GET /metrics`;
  const queue = new WorkQueue(limits.concurrency, limits.maxQueue);
  const metrics = serverMetrics(() => queue.depth, () => queue.running);
  const stats: ServerStats = { accepted: 0, answered: 0, abandoned: 0, refused: 0 };
  const app = Fastify({
    bodyLimit: limits.maxBodyBytes,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // unknown options are refused, not silently dropped
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array' } },
  });
  app.register(multipart, { limits: { fileSize: limits.maxBodyBytes, files: 1, fields: 80, fieldSize: 8192, parts: 81 } });
  for (const type of ['application/octet-stream', /^image\/[\w.+-]+$/]) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: limits.maxBodyBytes }, (_req, body, done) => done(null, body));
  }

  /** Replies to requests the queue admitted: each must be answered (or its client have left). */
  const admitted = new WeakSet<FastifyReply>();

  /** Run one piece of work for a request through the queue, counting it. */
  async function queued<T>(reply: FastifyReply, work: () => Promise<T>): Promise<T> {
    const signal = clientGone(reply);
    admitted.add(reply);
    stats.accepted++;
    try {
      return await queue.run(work, signal);
    } catch (e) {
      if (e instanceof QueueFullError) {
        admitted.delete(reply);
        stats.accepted--;
        stats.refused++;
      }
      throw e;
    } finally {
      if (signal.aborted && admitted.delete(reply)) stats.abandoned++;
    }
  }

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'none';
    metrics.requests.inc({ route, status: String(reply.statusCode) });
    metrics.latency.observe({ route }, reply.elapsedTime / 1000);
    if (admitted.delete(reply)) stats.answered++;
  });

  app.setErrorHandler((error: FastifyError | Error, _req, reply) => {
    if (error instanceof QueueFullError) {
      return reply.code(503).header('retry-after', String(error.retryAfterSeconds)).send({ error: error.message });
    }
    if (error instanceof AbortedError) return reply.code(499).send({ error: error.message });
    if (error instanceof HttpError) return reply.code(error.statusCode).send({ error: error.message });
    if (isUserError(error)) return reply.code(400).send({ error: oneLine(error.message) });
    const status = (error as FastifyError).statusCode;
    if ((error as FastifyError).validation) return reply.code(400).send({ error: validationMessage(error as FastifyError) });
    if (status === 415) return reply.code(415).send({ error: NO_IMAGE });
    if (status === 413) return reply.code(413).send({ error: `request body over the limit of ${limits.maxBodyBytes} bytes` });
    if (status !== undefined && status >= 400 && status < 500) return reply.code(status).send({ error: oneLine(error.message) });
    reply.log.error(error);
    return reply.code(500).send({ error: 'internal error (a bug; see the server log)' });
  });

  app.setNotFoundHandler((req, reply) => {
    const url = req.url.split('?')[0]!;
    const hint = url === '/v1/ask' && !asker ? '; questions need a VILA-HD folder: ps3 serve --model VILA_HD_DIR' : '';
    reply.code(404).send({ error: `no route ${req.method} ${url} (${routes}${hint})` });
  });

  app.post<{ Querystring: EncodeQuery }>('/v1/encode', { schema: { querystring: ENCODE_QUERY } }, async (req, reply) => {
    const q = req.query;
    const { bytes, fields } = await readUpload(req);
    const prompt = q.prompt ?? fields.get('prompt')?.[0];
    await checkPixels(bytes, limits.maxPixels);
    const request: EncodeRequest = {
      ...(q.looks !== undefined ? { looks: q.looks } : {}),
      ...(q.tokens !== undefined ? { tokens: q.tokens } : {}),
      ...(q.all !== undefined ? { all: q.all } : {}),
      ...(q.scales !== undefined ? { scales: q.scales } : {}),
      ...(prompt !== undefined ? { prompt } : {}),
      ...(q.scale !== undefined ? { heatmapScale: q.scale } : {}),
      ...(q.format === 'safetensors' ? { want: 'features' as const } : q.format === 'png' ? { want: 'heatmap' as const } : {}),
    };
    if (prompt !== undefined && !encoder.hasTokenizer) throw new UserError('this model has no tokenizer files (tokenizer.json), so it takes no prompt');
    const t0 = performance.now();
    const r = await queued(reply, () => encoder.encode(bytes, request));
    metrics.images.inc();
    metrics.tokens.inc(r.tokens);
    const info = { tokens: r.tokens, highres_tokens: r.highresTokens, ms: Math.round(r.ms * 10) / 10, wait_ms: Math.round((performance.now() - t0 - r.ms) * 10) / 10 };
    if (r.features) return reply.type('application/octet-stream').header('x-ps3-tokens', String(r.tokens)).header('x-ps3-ms', String(info.ms)).send(r.features);
    if (r.png) return reply.type('image/png').header('x-ps3-tokens', String(r.tokens)).header('x-ps3-ms', String(info.ms)).send(r.png);
    return { pooled: r.pooled, ...info };
  });

  app.post<{ Querystring: SimilarityQuery }>('/v1/similarity', { schema: { querystring: SIMILARITY_QUERY } }, async (req, reply) => {
    const q = req.query;
    const { bytes, fields } = await readUpload(req);
    const texts = [...(q.text ?? []), ...(fields.get('text') ?? [])];
    if (texts.length === 0) throw new UserError('give at least one text (query ?text=... or multipart field "text")');
    if (!encoder.hasTokenizer) throw new UserError('this model has no tokenizer files (tokenizer.json), so it takes no text');
    await checkPixels(bytes, limits.maxPixels);
    const t0 = performance.now();
    const results = await queued(reply, () => encoder.similarity(bytes, texts, q));
    metrics.images.inc(texts.length);
    metrics.tokens.inc(results.reduce((a, r) => a + r.tokens, 0));
    return { results, ms: Math.round((performance.now() - t0) * 10) / 10 };
  });

  if (asker) {
    app.post<{ Querystring: AskQuery }>('/v1/ask', { schema: { querystring: ASK_QUERY } }, async (req, reply) => {
      const q = req.query;
      const { bytes, fields } = await readUpload(req);
      const question = q.question ?? fields.get('question')?.[0];
      if (question === undefined || question.trim() === '') throw new UserError('give the question (query ?question=... or multipart field "question")');
      const options = q.options ?? fields.get('options');
      const method = q.method ?? fields.get('method')?.[0];
      await checkPixels(bytes, limits.maxPixels);
      const t0 = performance.now();
      const r = await queued(reply, () => asker.ask(bytes, { question, ...(options ? { options } : {}), ...(method !== undefined ? { method } : {}), ...(q.looks !== undefined ? { looks: q.looks } : {}), ...(q.tokens !== undefined ? { tokens: q.tokens } : {}) }));
      metrics.images.inc();
      metrics.tokens.inc(r.trunkTokens);
      return {
        answer: r.answer, option: r.option, scores: r.scores, method: r.method, trunk_tokens: r.trunkTokens, visual_tokens: r.visualTokens, looked: r.looked,
        ms: Math.round(r.ms * 10) / 10, wait_ms: Math.round((performance.now() - t0 - r.ms) * 10) / 10,
      };
    });
  }

  app.get('/healthz', async () => ({ status: 'ok', model: encoder.model.source, ...(asker ? { vila_hd: { model: asker.model.source, methods: asker.methods } } : {}), queue: { waiting: queue.depth, running: queue.running, max: limits.maxQueue } }));

  app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));

  return { app, stats, queue };
}
