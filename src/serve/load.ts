/**
 * A closed-loop HTTP load: `clients` keep-alive connections each send the next request as soon
 * as the last is answered, `requests` in all; throughput and latency percentiles. For
 * `ps3 bench serve`.
 */
import http from 'node:http';

export interface LoadResult {
  readonly clients: number;
  readonly requests: number;
  readonly ok: number;
  /** answers other than 200, by status (0: connection error) */
  readonly others: Record<string, number>;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
}

function post(url: string, body: Buffer, type: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': type, 'content-length': String(body.length) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

/** The q-quantile of sorted values (nearest rank). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export async function runLoad(url: string, body: Buffer, type: string, clients: number, requests: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const latencies: number[] = [];
  const others: Record<string, number> = {};
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < requests) {
        next++;
        const start = performance.now();
        const status = await post(url, body, type, agent);
        if (status === 200) latencies.push(performance.now() - start);
        else others[String(status)] = (others[String(status)] ?? 0) + 1;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    clients,
    requests,
    ok: latencies.length,
    others,
    seconds,
    requestsPerSecond: latencies.length / seconds,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    meanMs: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
  };
}
