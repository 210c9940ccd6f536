import { Worker, type ResourceLimits } from 'node:worker_threads';
import type { TypedTensor } from '@edgefleet/shared';
import type { CheckRequest, CheckResponse, ModelSignature } from './model-check-worker.js';

/**
 * Always the compiled worker: from src/models/*.ts (vitest) and from dist/models/*.js alike,
 * `../../dist/models/` is packages/hub/dist/models/, so run `npx tsc -b` before tests.
 */
const WORKER_URL = new URL('../../dist/models/model-check-worker.js', import.meta.url);

/**
 * The check worker's V8 heap limits. Its tensors are typed arrays (outside the heap, bounded by
 * MAX_GOLDEN_ELEMENTS), so the heap holds little more than onnxruntime's bindings: a model that makes
 * it grow past this ends its own worker (ERR_WORKER_OUT_OF_MEMORY), never the hub.
 */
export const MODEL_CHECK_LIMITS: ResourceLimits = { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 };

export interface CheckResult {
  signature: ModelSignature;
  inputs: TypedTensor[];
  outputs: TypedTensor[];
}

function describeWorkerError(err: Error & { code?: string }, limits: ResourceLimits): string {
  if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return `the model check ran out of memory (worker heap limited to ${limits.maxOldGenerationSizeMb} MB): ${err.message}`;
  }
  return `model check failed: ${err.message}`;
}

/**
 * Decodes the model, loads it in onnxruntime and computes the golden outputs, all in a worker thread
 * with a heap limit; throws naming the problem. The golden size bound is checked on the declared
 * shapes before any golden tensor is allocated.
 */
export function checkModel(bytes: Uint8Array, limits: ResourceLimits = MODEL_CHECK_LIMITS): Promise<CheckResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_URL, { resourceLimits: limits });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
      void worker.terminate();
    };
    worker.once('message', (res: CheckResponse) =>
      finish(() => (res.ok ? resolve({ signature: res.signature, inputs: res.inputs, outputs: res.outputs }) : reject(new Error(res.error)))),
    );
    worker.once('error', (err) => finish(() => reject(new Error(describeWorkerError(err, limits)))));
    worker.once('exit', (code) => finish(() => reject(new Error(`model check worker exited with code ${code}`))));
    const copy = new Uint8Array(bytes);
    worker.postMessage({ bytes: copy } satisfies CheckRequest, [copy.buffer]);
  });
}
