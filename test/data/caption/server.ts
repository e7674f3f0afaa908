/**
 * A stand-in for an OpenAI-compatible vision chat server, for the caption tests: node:http on
 * 127.0.0.1 (ephemeral port). It checks each request's shape, decodes its image, counts requests
 * in flight, and answers what the test's script says (by default a caption naming the image's
 * hash and size, so a test can tell which request a caption came from).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';

export interface SeenRequest {
  /** 1-based, in arrival order */
  readonly n: number;
  /** performance.now() when it arrived */
  readonly at: number;
  readonly path: string;
  readonly authorization: string | undefined;
  readonly model: string;
  readonly prompt: string;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly mime: string;
  readonly width: number;
  readonly height: number;
  /** sha256 of the image bytes sent, first 16 hex digits */
  readonly hash: string;
}

/** What to answer: a status (200 sends a caption unless `body` is given), or no answer at all. */
export type Reply =
  | { readonly status: number; readonly body?: unknown; readonly headers?: Record<string, string>; readonly delayMs?: number }
  | { readonly hang: true };

export type Script = (request: SeenRequest) => Reply;

export const ok: Script = () => ({ status: 200 });

export function captionFor(r: Pick<SeenRequest, 'hash' | 'width' | 'height'>): string {
  return `caption ${r.hash} ${r.width}x${r.height}`;
}

const DATA_URL = /^data:(image\/(?:jpeg|png));base64,([A-Za-z0-9+/=]+)$/;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export class FakeVisionServer {
  readonly requests: SeenRequest[] = [];
  /** requests that broke the protocol, one line each; a test expects none */
  readonly problems: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** requests arrived, counted as they arrive (the `n` of the next one is this + 1) */
  private arrived = 0;
  private script: Script;
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(
    private readonly server: Server,
    script: Script,
  ) {
    this.script = script;
  }

  static async start(script: Script = ok): Promise<FakeVisionServer> {
    const server = createServer();
    const fake = new FakeVisionServer(server, script);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void fake.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** A fresh start for the next test: a new script, no requests seen, counts at zero. */
  reset(script: Script = ok): void {
    this.script = script;
    this.requests.length = 0;
    this.arrived = 0;
    this.maxInFlight = this.inFlight;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // numbered on arrival: parsing awaits, and requests in parallel must not share a number
    const n = ++this.arrived;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    let finished = false;
    const finish = (): void => {
      if (!finished) this.inFlight--;
      finished = true;
    };
    // whichever comes first: the answer handed to the socket, or the client going away
    res.on('finish', finish);
    res.on('close', finish);
    try {
      const seen = await this.parse(req, n);
      if (seen === null) {
        res.writeHead(422, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'bad request shape' } }));
        return;
      }
      this.requests.push(seen);
      const reply = this.script(seen);
      if ('hang' in reply) return;
      const send = (): void => {
        const body = reply.body ?? (reply.status === 200 ? { choices: [{ index: 0, message: { role: 'assistant', content: captionFor(seen) } }] } : { error: { message: `scripted ${reply.status}` } });
        // a string body goes as plain text, as some proxies answer errors
        const text = typeof body === 'string';
        res.writeHead(reply.status, { 'content-type': text ? 'text/plain' : 'application/json', ...reply.headers }).end(text ? body : JSON.stringify(body));
      };
      if (reply.delayMs === undefined) send();
      else {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          send();
        }, reply.delayMs);
        this.timers.add(timer);
      }
    } catch (e) {
      this.problems.push(`server error: ${String(e)}`);
      res.writeHead(500).end();
    }
  }

  private async parse(req: IncomingMessage, n: number): Promise<SeenRequest | null> {
    const at = performance.now();
    const bad = (why: string): null => {
      this.problems.push(`request ${n}: ${why}`);
      return null;
    };
    if (req.method !== 'POST') return bad(`method ${req.method}`);
    if (req.headers['content-type'] !== 'application/json') return bad(`content-type ${req.headers['content-type']}`);
    const body = JSON.parse(await readBody(req)) as {
      model?: unknown;
      max_tokens?: unknown;
      temperature?: unknown;
      messages?: { role?: unknown; content?: { type?: unknown; text?: unknown; image_url?: { url?: unknown } }[] }[];
    };
    const message = body.messages?.[0];
    if (body.messages?.length !== 1 || message?.role !== 'user' || message.content?.length !== 2) return bad('expected one user message of two parts');
    const [text, image] = message.content;
    if (text?.type !== 'text' || typeof text.text !== 'string') return bad('first part is not text');
    if (image?.type !== 'image_url' || typeof image.image_url?.url !== 'string') return bad('second part is not an image_url');
    const match = DATA_URL.exec(image.image_url.url);
    if (match === null) return bad('image_url is not a base64 JPEG or PNG data URL');
    if (typeof body.model !== 'string' || typeof body.max_tokens !== 'number' || typeof body.temperature !== 'number') return bad('model, max_tokens or temperature missing');
    const bytes = Buffer.from(match[2]!, 'base64');
    const meta = await sharp(bytes).metadata();
    const format = meta.format === 'jpeg' ? 'image/jpeg' : `image/${meta.format}`;
    if (format !== match[1]) return bad(`data URL says ${match[1]} but holds ${meta.format}`);
    return {
      n,
      at,
      path: req.url ?? '',
      authorization: req.headers.authorization,
      model: body.model,
      prompt: text.text,
      maxTokens: body.max_tokens,
      temperature: body.temperature,
      mime: match[1]!,
      width: meta.width!,
      height: meta.height!,
      hash: createHash('sha256').update(bytes).digest('hex').slice(0, 16),
    };
  }
}
