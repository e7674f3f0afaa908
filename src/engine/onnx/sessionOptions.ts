/** The options every ONNX Runtime session of the engine opens with. */
import os from 'node:os';
import type { InferenceSession } from 'onnxruntime-node';

export function cpuSessionOptions(): InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: os.availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: false,
    // idle workers sleep instead of spinning: the sessions take turns, and the cores are shared
    // with TensorFlow.js and other processes (spinning cost ~10% more CPU time here)
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}
