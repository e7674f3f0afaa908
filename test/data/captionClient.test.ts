/**
 * The vision chat client (src/data/caption/client.ts) against a local stand-in server: request
 * shape, endpoint spellings, and which failures are retried and how.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chatCompletionsUrl, RequestFailed, VisionClient, type VisionClientOptions } from '../../src/data/caption/client.js';
import { imageDataUrl } from '../../src/data/caption/crops.js';
import { UserError } from '../../src/errors.js';
import { captionFor, FakeVisionServer, ok, type SeenRequest } from './caption/server.js';

let server: FakeVisionServer;
let imageUrl: string;

before(async () => {
  server = await FakeVisionServer.start();
  const data = new Uint8Array(64 * 48 * 3).map((_, i) => (i * 37) % 256);
  imageUrl = await imageDataUrl({ data, width: 64, height: 48 }, 768, 'png');
});
after(() => server.close());

function client(options: Partial<VisionClientOptions> = {}): VisionClient {
  return new VisionClient({ endpoint: server.url, model: 'test-vlm', timeoutMs: 5000, maxTokens: 77, retries: 3, retryBaseMs: 10, ...options });
}

/** Run `describe` against a script, from a clean slate. */
async function run(script: (r: SeenRequest) => ReturnType<typeof ok>, c = client()): Promise<{ result: Promise<string>; c: VisionClient }> {
  server.reset(script);
  return { result: c.describe('Describe it.', imageUrl), c };
}

test('chatCompletionsUrl accepts a server root, .../v1 or the full URL', () => {
  assert.equal(chatCompletionsUrl('http://127.0.0.1:8000'), 'http://127.0.0.1:8000/v1/chat/completions');
  assert.equal(chatCompletionsUrl('http://127.0.0.1:8000/v1/'), 'http://127.0.0.1:8000/v1/chat/completions');
  assert.equal(chatCompletionsUrl('https://h/api/v1/chat/completions'), 'https://h/api/v1/chat/completions');
  assert.equal(chatCompletionsUrl('http://h/proxy'), 'http://h/proxy/v1/chat/completions');
  assert.throws(() => chatCompletionsUrl('localhost:8000'), UserError);
  assert.throws(() => chatCompletionsUrl('not a url'), UserError);
});

test('a request carries the model, prompt, image, max_tokens, temperature 0 and the API key', async () => {
  for (const endpoint of [server.url, `${server.url}/v1`, `${server.url}/v1/chat/completions`]) {
    const { result } = await run(ok, client({ endpoint, apiKey: 'sk-local' }));
    const caption = await result;
    const r = server.requests[0]!;
    assert.equal(caption, captionFor(r));
    assert.equal(r.path, '/v1/chat/completions');
    assert.equal(r.model, 'test-vlm');
    assert.equal(r.prompt, 'Describe it.');
    assert.equal(r.maxTokens, 77);
    assert.equal(r.temperature, 0);
    assert.equal(r.authorization, 'Bearer sk-local');
    assert.equal(r.mime, 'image/png');
    assert.deepEqual([r.width, r.height], [64, 48]);
  }
  const { result } = await run(ok);
  await result;
  assert.equal(server.requests[0]!.authorization, undefined);
  assert.deepEqual(server.problems, []);
});

test('429 waits as long as Retry-After asks; 500 and a timeout are retried; then the caption comes', async () => {
  const { result, c } = await run(
    (r) => (r.n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : r.n === 2 ? { status: 500 } : r.n === 3 ? { hang: true } : { status: 200 }),
    // long enough that only the hung request meets it, even on a loaded machine
    client({ timeoutMs: 1000 }),
  );
  assert.equal(await result, captionFor(server.requests[3]!));
  assert.equal(server.requests.length, 4);
  assert.equal(c.requests, 4);
  assert.equal(c.retries, 3);
  const [first, second, third, fourth] = server.requests.map((r) => r.at) as [number, number, number, number];
  assert.ok(second - first >= 990, `retried ${(second - first).toFixed(0)} ms after a Retry-After of 1 s`);
  assert.ok(third - second < 900, 'a 500 is retried after the short back-off');
  assert.ok(fourth - third >= 990, `the hung request was given up after ${(fourth - third).toFixed(0)} ms, before its 1000 ms timeout`);
});

test('retry-after-ms is honoured too', async () => {
  const { result } = await run((r) => (r.n === 1 ? { status: 503, headers: { 'retry-after-ms': '300' } } : { status: 200 }));
  await result;
  const gap = server.requests[1]!.at - server.requests[0]!.at;
  assert.ok(gap >= 290, `retried after ${gap.toFixed(0)} ms`);
});

test('a 400 is not retried and its error names the status and the server\'s message', async () => {
  const { result, c } = await run(() => ({ status: 400, body: { error: { message: 'image too small', type: 'invalid_request_error' } } }));
  await assert.rejects(result, (e: unknown) => e instanceof RequestFailed && e.status === 400 && e.message === 'HTTP 400: image too small');
  assert.equal(server.requests.length, 1);
  assert.equal(c.retries, 0);
});

test('out of retries, the last failure is reported with the number of attempts', async () => {
  const { result, c } = await run(() => ({ status: 503, body: 'overloaded' }), client({ retries: 2 }));
  await assert.rejects(result, (e: unknown) => e instanceof RequestFailed && e.status === 503 && /^HTTP 503: overloaded \(after 3 attempts\)$/.test(e.message));
  assert.equal(c.requests, 3);
});

test('a refused connection is a network error, retried', async () => {
  const gone = await FakeVisionServer.start();
  const endpoint = gone.url;
  await gone.close();
  const c = client({ endpoint, retries: 2 });
  await assert.rejects(c.describe('x', imageUrl), (e: unknown) => e instanceof RequestFailed && e.status === null && /^network error: ECONNREFUSED/.test(e.message));
  assert.equal(c.requests, 3);
  assert.equal(c.retries, 2);
});

test('an abort ends the request at once with the signal\'s reason, never retried', async () => {
  server.reset(() => ({ hang: true }));
  const c = client();
  const stop = new AbortController();
  const reason = new Error('stop now');
  setTimeout(() => stop.abort(reason), 100);
  const started = performance.now();
  await assert.rejects(c.describe('x', imageUrl, stop.signal), (e: unknown) => e === reason);
  assert.ok(performance.now() - started < 2000);
  assert.equal(c.requests, 1);
  // and during a back-off wait
  server.reset(() => ({ status: 500 }));
  const later = new AbortController();
  setTimeout(() => later.abort(reason), 100);
  await assert.rejects(client({ retryBaseMs: 60_000 }).describe('x', imageUrl, later.signal), (e: unknown) => e === reason);
});

test('replies: content parts are joined and whitespace collapsed; a reply without a caption fails, not retried', async () => {
  let { result } = await run(() => ({ status: 200, body: { choices: [{ message: { content: [{ type: 'text', text: ' A red\n\nbox. ' }, { type: 'text', text: 'Text "EXIT".' }] } }] } }));
  assert.equal(await result, 'A red box. Text "EXIT".');
  ({ result } = await run(() => ({ status: 200, body: { choices: [] } })));
  await assert.rejects(result, (e: unknown) => e instanceof RequestFailed && /no choices\[0\]\.message\.content/.test(e.message));
  ({ result } = await run(() => ({ status: 200, body: { choices: [{ message: { content: '  ' } }] } })));
  await assert.rejects(result, (e: unknown) => e instanceof RequestFailed && /empty caption/.test(e.message));
  assert.equal(server.requests.length, 1);
});
