/** `metrics.jsonl`: one JSON line a step, cut back on resume to the steps the checkpoint has. */
import fs from 'node:fs';

/** Keep only the lines of steps up to `step` (a kill after the last checkpoint may have logged more). */
export function truncateMetrics(file: string, step: number): void {
  if (!fs.existsSync(file)) return;
  const kept = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => {
      if (!line.trim()) return false;
      try {
        return (JSON.parse(line) as { step: number }).step <= step;
      } catch {
        return false;
      }
    });
  fs.writeFileSync(file, kept.length ? `${kept.join('\n')}\n` : '');
}
