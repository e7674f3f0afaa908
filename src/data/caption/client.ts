/**
 * A client of an OpenAI-compatible vision chat endpoint (`POST {endpoint}/chat/completions`, as
 * served by vLLM, llama.cpp, Ollama, LM Studio, ...): one text prompt and one image (a data URL)
 * in, the reply's `choices[0].message.content` out.
 *
 * Local servers under load fail in passing, so an attempt that meets a network error, a timeout,
 * 408, 429 or 5xx is retried with exponential back-off and jitter (at least as long as the
 * server's `Retry-After` or `retry-after-ms` asks); any other 4xx is the request's fault and is
 * not retried.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { UserError } from '../../errors.js';

export interface VisionClientOptions {
  /** server root, `.../v1`, or the full `.../chat/completions` URL */
  readonly endpoint: string;
  readonly model: string;
  /** sent as `Authorization: Bearer ...` */
  readonly apiKey?: string;
  /** per attempt, until the whole reply has arrived */
  readonly timeoutMs: number;
  readonly maxTokens: number;
  /** retries after the first attempt */
  readonly retries: number;
  /** back-off before retry n (0-based) is up to base x 2^n (default 1000 ms), ... */
  readonly retryBaseMs?: number;
  /** ... and never more than this (default 60000 ms), unless the server asks for longer */
  readonly retryMaxMs?: number;
}

/** A request that failed for good: not retryable, or out of retries. */
export class RequestFailed extends Error {
  override readonly name = 'RequestFailed';
  constructor(
    message: string,
    /** HTTP status of the last attempt; null for a network error or timeout */
    readonly status: number | null,
  ) {
    super(message);
  }
}

type Attempt =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly retryable: boolean; readonly status: number | null; readonly message: string; readonly retryAfterMs?: number };

/** The longest wait a server's Retry-After is honoured for. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** `http://host:8000`, `http://host:8000/v1/` or `.../v1/chat/completions` -> the chat completions URL. */
export function chatCompletionsUrl(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UserError(`--endpoint: not a URL: "${endpoint}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UserError(`--endpoint: expected an http:// or https:// URL, got "${endpoint}"`);
  const path = url.pathname.replace(/\/+$/, '');
  url.pathname = path.endsWith('/chat/completions') ? path : path.endsWith('/v1') ? `${path}/chat/completions` : `${path}/v1/chat/completions`;
  return url.toString();
}

const completionSchema = z.object({
  choices: z
    .array(
      z.object({
        message: z.object({
          // some servers answer with content parts rather than a string
          content: z.union([z.string(), z.array(z.object({ type: z.string(), text: z.string().optional() })), z.null()]),
        }),
      }),
    )
    .min(1),
});

function parseCompletion(body: string): Attempt {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, retryable: false, status: 200, message: `reply is not JSON: ${oneLine(body)}` };
  }
  const parsed = completionSchema.safeParse(json);
  if (!parsed.success) return { ok: false, retryable: false, status: 200, message: `reply has no choices[0].message.content: ${oneLine(body)}` };
  const content = parsed.data.choices[0]!.message.content;
  const raw = typeof content === 'string' ? content : (content ?? []).map((p) => p.text ?? '').join(' ');
  // a caption is one line of text: newlines and runs of spaces collapse
  const text = raw.replace(/\s+/g, ' ').trim();
  if (text === '') return { ok: false, retryable: false, status: 200, message: 'reply has an empty caption' };
  return { ok: true, text };
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}...` : line || '(empty)';
}

/** The server's own words from an error body: OpenAI's `{ error: { message } }` and common variants. */
function errorDetail(body: string): string {
  try {
    const json: unknown = JSON.parse(body);
    if (typeof json === 'object' && json !== null) {
      const o = json as Record<string, unknown>;
      const error = o['error'];
      if (typeof error === 'object' && error !== null && typeof (error as Record<string, unknown>)['message'] === 'string') {
        return oneLine((error as Record<string, unknown>)['message'] as string);
      }
      for (const field of [error, o['message'], o['detail']]) if (typeof field === 'string') return oneLine(field);
    }
  } catch {
    // not JSON: the body as text
  }
  return oneLine(body);
}

/** Wait asked for by `retry-after-ms` (OpenAI's) or `Retry-After` (seconds or an HTTP date), capped. */
function retryAfterMs(headers: Headers): number | undefined {
  const ms = Number(headers.get('retry-after-ms') ?? NaN);
  const value = headers.get('retry-after');
  let wait: number | undefined;
  if (Number.isFinite(ms) && ms >= 0) wait = ms;
  else if (value !== null && /^\s*\d+(\.\d+)?\s*$/.test(value)) wait = Number(value) * 1000;
  else if (value !== null && !Number.isNaN(Date.parse(value))) wait = Math.max(0, Date.parse(value) - Date.now());
  return wait === undefined ? undefined : Math.min(wait, MAX_RETRY_AFTER_MS);
}

function isRetryableStatus(status: number): boolean {
  // 408 is a timeout on the server's side, which we retry on ours
  return status === 408 || status === 429 || status >= 500;
}

function networkDetail(e: unknown): string {
  // undici's "fetch failed" hides the reason in `cause` (ECONNREFUSED, ECONNRESET, ...)
  const cause = e instanceof Error ? (e.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return e instanceof Error ? e.message : String(e);
}

export class VisionClient {
  readonly url: string;
  /** HTTP attempts made, retries included */
  requests = 0;
  retries = 0;

  constructor(private readonly options: VisionClientOptions) {
    this.url = chatCompletionsUrl(options.endpoint);
  }

  /**
   * The model's reply to `prompt` about the image at `imageUrl`. Throws RequestFailed when it
   * fails for good, or the signal's reason when `signal` aborts (never retried).
   */
  async describe(prompt: string, imageUrl: string, signal?: AbortSignal): Promise<string> {
    const body = JSON.stringify({
      model: this.options.model,
      messages: [{ role: 'user', content: [{ type: 'text', text: prompt }, { type: 'image_url', image_url: { url: imageUrl } }] }],
      max_tokens: this.options.maxTokens,
      temperature: 0,
    });
    for (let retry = 0; ; retry++) {
      signal?.throwIfAborted();
      const attempt = await this.attempt(body, signal);
      if (attempt.ok) return attempt.text;
      if (!attempt.retryable || retry >= this.options.retries) {
        throw new RequestFailed(retry > 0 ? `${attempt.message} (after ${retry + 1} attempts)` : attempt.message, attempt.status);
      }
      this.retries++;
      const wait = Math.max(attempt.retryAfterMs ?? 0, this.backoffMs(retry));
      // an abort while waiting ends with the signal's reason, as an abort mid-request does
      await sleep(wait, undefined, signal === undefined ? {} : { signal }).catch((e: unknown) => {
        throw signal?.aborted ? signal.reason : e;
      });
    }
  }

  /** Exponential back-off with "equal jitter": half fixed, half random, so clients spread out. */
  private backoffMs(retry: number): number {
    const cap = Math.min(this.options.retryMaxMs ?? 60_000, (this.options.retryBaseMs ?? 1000) * 2 ** retry);
    return cap / 2 + (Math.random() * cap) / 2;
  }

  private async attempt(body: string, signal: AbortSignal | undefined): Promise<Attempt> {
    this.requests++;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.options.timeoutMs);
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.options.apiKey) headers['authorization'] = `Bearer ${this.options.apiKey}`;
    try {
      const response = await fetch(this.url, {
        method: 'POST',
        headers,
        body,
        signal: signal === undefined ? timeout.signal : AbortSignal.any([signal, timeout.signal]),
      });
      const text = await response.text();
      if (response.ok) return parseCompletion(text);
      const wait = retryAfterMs(response.headers);
      return {
        ok: false,
        retryable: isRetryableStatus(response.status),
        status: response.status,
        message: `HTTP ${response.status}${text.trim() === '' ? ` ${response.statusText}` : `: ${errorDetail(text)}`}`,
        ...(wait === undefined ? {} : { retryAfterMs: wait }),
      };
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      if (timeout.signal.aborted) return { ok: false, retryable: true, status: null, message: `no reply within ${this.options.timeoutMs} ms` };
      return { ok: false, retryable: true, status: null, message: `network error: ${networkDetail(e)}` };
    } finally {
      clearTimeout(timer);
    }
  }
}
