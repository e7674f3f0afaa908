/** The options every ONNX Runtime session of the engine opens with. */
import os from 'node:os';
import type { InferenceSession } from 'onnxruntime-node';

export interface CpuSessionChoices {
  /**
   * Let kernels repack constant weights at session creation (the default). The trunk turns it
   * off: a repacked MatMul weight is a second copy beside the one the model holds (about the
   * weights' size again while sessions are made), and packing it takes a third of a session's
   * creation time, while its GEMMs over thousands of tokens pack their operand as they go at no
   * measurable cost.
   */
  readonly prepack?: boolean;
  /**
   * Plan a run's intermediate buffers from the shapes of the runs before (the default). The trunk
   * turns it off: its sessions see token counts that change from pass to pass, and the planned
   * blocks they kept raised a so400m-4k look's peak RSS by 90-190 MB (one look on the 4K sample,
   * two pairs of runs: 3285 -> 3096 MB, 3149 -> 3056 MB) at no measurable CPU cost.
   */
  readonly memPattern?: boolean;
}

export function cpuSessionOptions(choices: CpuSessionChoices = {}): InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: os.availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: false,
    enableMemPattern: choices.memPattern ?? true,
    extra: {
      session: {
        // idle workers sleep instead of spinning: the sessions take turns, and the cores are shared
        // with TensorFlow.js and other processes (spinning cost ~10% more CPU time here)
        intra_op: { allow_spinning: '0' },
        ...(choices.prepack === false ? { disable_prepacking: '1' } : {}),
      },
    },
  };
}
