/**
 * Learning rate: linear warm-up from 0, then cosine decay to 0 (open_clip's `cosine_lr`).
 * `step` counts optimizer steps from 0.
 */
export interface ScheduleOptions {
  readonly lr: number;
  readonly warmup: number;
  readonly steps: number;
}

export function learningRate(step: number, { lr, warmup, steps }: ScheduleOptions): number {
  if (step < warmup) return (lr * (step + 1)) / warmup;
  const span = Math.max(1, steps - warmup);
  const progress = Math.min(1, (step - warmup) / span);
  return 0.5 * (1 + Math.cos(Math.PI * progress)) * lr;
}
