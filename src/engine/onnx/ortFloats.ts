/**
 * Floats ONNX Runtime can take: onnxruntime-node refuses arrays in shared memory at run time
 * ("Invalid argument"), and a large image's pixels are shared (the processor makes them on two
 * threads, src/io/squashThread.ts), so those are copied; any other array is passed as is.
 */
export function ortFloats(data: Float32Array): Float32Array {
  return typeof SharedArrayBuffer !== 'undefined' && data.buffer instanceof SharedArrayBuffer ? data.slice() : data;
}
