import { Worker } from 'node:worker_threads';
import type { EncodedTensor, TensorSpec } from '@edgefleet/shared';
import type { CheckRequest, CheckResponse } from './model-check-worker.js';

/**
 * Always the compiled worker: from src/models/*.ts (vitest) and from dist/models/*.js alike,
 * `../../dist/models/` is packages/hub/dist/models/, so run `npx tsc -b` before tests.
 */
const WORKER_URL = new URL('../../dist/models/model-check-worker.js', import.meta.url);

/** Loads the model in onnxruntime in a worker thread and computes the golden outputs; throws naming the problem. */
export function checkModel(bytes: Uint8Array, inputs: TensorSpec[]): Promise<{ inputs: EncodedTensor[]; outputs: EncodedTensor[] }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_URL);
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
      void worker.terminate();
    };
    worker.once('message', (res: CheckResponse) =>
      finish(() => (res.ok ? resolve({ inputs: res.inputs, outputs: res.outputs }) : reject(new Error(`onnxruntime could not run the model: ${res.error}`)))),
    );
    worker.once('error', (err) => finish(() => reject(new Error(`model check failed: ${err.message}`))));
    worker.once('exit', (code) => finish(() => reject(new Error(`model check worker exited with code ${code}`))));
    const copy = new Uint8Array(bytes);
    worker.postMessage({ bytes: copy, inputs } satisfies CheckRequest, [copy.buffer]);
  });
}
