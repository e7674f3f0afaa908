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
}

export function cpuSessionOptions(choices: CpuSessionChoices = {}): InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: os.availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: false,
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
