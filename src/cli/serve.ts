/**
 * `ps3 serve --model DIR [--port P] [--host H]`: the HTTP API (src/serve/server.ts) over a model
 * loaded once; a VILA-HD folder serves its PS3 and answers questions (POST /v1/ask) too.
 * SIGTERM or SIGINT: stop listening, refuse new requests with 503, finish every accepted one,
 * then exit 0 with a line counting them.
 */
import path from 'node:path';
import { UserError } from '../errors.js';
import { readVilaConfig, isVilaFolder } from '../mllm/config.js';
import { ps3PathOf } from '../mllm/model.js';
import { Asker } from '../serve/asker.js';
import { Encoder } from '../serve/encoder.js';
import { buildServer } from '../serve/server.js';
import { positiveInt } from './inputs.js';

export interface ServeCliOptions {
  backend?: string;
  model?: string;
  preset?: string;
  seed?: string;
  port: string;
  host: string;
  maxQueue: string;
  concurrency: string;
  maxBodyMb: string;
  maxPixels: string;
  trunk?: string;
}

export async function serveCommand(o: ServeCliOptions): Promise<number> {
  const port = positiveInt('port', o.port)!;
  if (port > 65535) throw new UserError(`--port must be in [0, 65535], got ${port}`);
  const maxQueue = positiveInt('max-queue', o.maxQueue)!;
  const concurrency = positiveInt('concurrency', o.concurrency)!;
  if (concurrency < 1) throw new UserError('--concurrency must be at least 1');
  const maxBodyMb = Number(o.maxBodyMb);
  if (!(maxBodyMb > 0)) throw new UserError(`--max-body-mb must be a positive number, got "${o.maxBodyMb}"`);
  const maxPixels = positiveInt('max-pixels', o.maxPixels)!;
  if (maxPixels < 1) throw new UserError('--max-pixels must be at least 1');
  const seed = positiveInt('seed', o.seed);

  // a VILA-HD folder: its PS3 is the encoder's model, loaded once for both
  const vila = o.model !== undefined && isVilaFolder(o.model) ? o.model : undefined;
  const model = vila ? ps3PathOf(vila, readVilaConfig(path.join(vila, 'config.json'))) : o.model;
  const encoder = await Encoder.load({ ...(model ? { model } : {}), ...(o.preset ? { preset: o.preset } : {}), ...(seed !== undefined ? { seed } : {}) }, { ...o, maxPixels });
  let asker: Asker | undefined;
  try {
    asker = vila ? Asker.load(vila, encoder.model, maxPixels) : undefined;
  } catch (e) {
    await encoder.close();
    throw e;
  }
  const { app, stats } = buildServer(encoder, { maxBodyBytes: Math.round(maxBodyMb * 2 ** 20), maxPixels, maxQueue, concurrency }, asker);
  let address: string;
  try {
    address = await app.listen({ port, host: o.host });
  } catch (e) {
    asker?.close();
    await encoder.close();
    throw new UserError(`cannot listen on ${o.host}:${port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  process.stdout.write(`ps3 serve: listening on ${address} (model: ${encoder.model.source}${asker ? `; VILA-HD ${vila} answers POST /v1/ask (methods ${asker.methods.join(', ')})` : ''})\n`);
  // the handlers stay while the server drains: a repeated SIGTERM must not end it with requests in flight
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.on('SIGTERM', () => resolve('SIGTERM'));
    process.on('SIGINT', () => resolve('SIGINT'));
  });
  process.stdout.write(`ps3 serve: ${signal}: finishing ${stats.accepted - stats.answered - stats.abandoned} accepted request(s), refusing new ones\n`);
  await app.close();
  asker?.close();
  await encoder.close();
  process.stdout.write(`ps3 serve: stopped; answered ${stats.answered} of ${stats.accepted} accepted request(s) (${stats.abandoned} clients left early, ${stats.refused} refused as over the queue)\n`);
  return 0;
}
