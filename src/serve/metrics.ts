/**
 * The server's Prometheus metrics (text format at GET /metrics): requests by route and status,
 * latency histogram, queue depth and running jobs, tokens encoded.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServerMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'route' | 'status'>;
  readonly latency: Histogram<'route'>;
  readonly queueDepth: Gauge;
  readonly running: Gauge;
  readonly tokens: Counter;
  readonly images: Counter;
}

export function serverMetrics(depth: () => number, running: () => number): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'ps3_' });
  return {
    registry,
    requests: new Counter({ name: 'ps3_http_requests_total', help: 'HTTP requests answered, by route and status code', labelNames: ['route', 'status'], registers: [registry] }),
    latency: new Histogram({
      name: 'ps3_http_request_duration_seconds',
      help: 'time from request to response, by route (queueing included)',
      labelNames: ['route'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    queueDepth: new Gauge({ name: 'ps3_queue_depth', help: 'requests waiting for the encoder', collect() { this.set(depth()); }, registers: [registry] }),
    running: new Gauge({ name: 'ps3_queue_running', help: 'requests the encoder is working on', collect() { this.set(running()); }, registers: [registry] }),
    tokens: new Counter({ name: 'ps3_tokens_total', help: 'tokens encoded (low-res plus chosen high-res)', registers: [registry] }),
    images: new Counter({ name: 'ps3_images_total', help: 'images encoded', registers: [registry] }),
  };
}
