import type { TensorData } from './types.js';

/** Messages between the worker pool (main thread) and a session worker. Plain data only. */

export interface WorkerInit {
  path: string;
  intraOpNumThreads: number;
}

/** A tensor on the wire to and from a worker: onnxruntime type name, dims, and a transferred typed array. */
export interface WireTensor {
  name: string;
  type: string;
  dims: number[];
  data: TensorData;
}

export interface RunRequest {
  type: 'run';
  id: number;
  inputs: WireTensor[];
}

export type WorkerReply =
  | { type: 'ready'; inputNames: string[]; outputNames: string[] }
  | { type: 'init-error'; message: string }
  | { type: 'result'; id: number; outputs: WireTensor[]; computeMs: number }
  | { type: 'error'; id: number; message: string };

/** The ArrayBuffers to transfer with `tensors`; a view over part of a buffer is first copied into its own. */
export function transferList(tensors: WireTensor[]): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  for (const t of tensors) {
    const buf = t.data.buffer;
    if (!(buf instanceof ArrayBuffer) || t.data.byteOffset !== 0 || t.data.byteLength !== buf.byteLength || buffers.includes(buf)) {
      t.data = t.data.slice() as TensorData;
    }
    buffers.push(t.data.buffer as ArrayBuffer);
  }
  return buffers;
}
