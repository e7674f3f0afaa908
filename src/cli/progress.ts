/** Progress bars for long work: rate and ETA on a TTY, one plain line every few seconds otherwise. */
import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number, fields?: Record<string, string>): void;
  stop(): void;
}

export function progressBar(total: number, label: string, fieldsFormat = ''): Progress {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {value}/{total} | {rate}/s | ETA {eta_formatted}${fieldsFormat ? ` | ${fieldsFormat}` : ''}`, stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    const started = performance.now();
    bar.start(total, 0, { rate: '0.00' });
    return {
      update(value, fields = {}) {
        const rate = value / Math.max(1e-9, (performance.now() - started) / 1000);
        bar.update(value, { rate: rate.toFixed(2), ...fields });
      },
      stop() {
        bar.stop();
      },
    };
  }
  // not a terminal (CI, a log file): a line every 5 s and at the end
  const started = performance.now();
  let lastPrint = 0;
  return {
    update(value, fields = {}) {
      const now = performance.now();
      if (now - lastPrint < 5000 && value < total) return;
      lastPrint = now;
      const seconds = (now - started) / 1000;
      const rate = value / Math.max(1e-9, seconds);
      const eta = rate > 0 ? (total - value) / rate : 0;
      const extra = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(' ');
      process.stderr.write(`${label} ${value}/${total} | ${rate.toFixed(2)}/s | ETA ${eta.toFixed(0)}s${extra ? ` | ${extra}` : ''}\n`);
    },
    stop() {},
  };
}
