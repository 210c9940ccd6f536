import { Worker, type ResourceLimits } from 'node:worker_threads';
import { checkGoldenInputSize, type TensorSpec, type TypedTensor } from '@edgefleet/shared';
import type { CheckRequest, CheckResponse } from './model-check-worker.js';

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
 * Loads the model in onnxruntime in a worker thread with a heap limit and computes the golden
 * outputs; throws naming the problem. The golden size bound is checked here first, so an oversized
 * input never reaches a worker.
 */
export function checkModel(bytes: Uint8Array, inputs: TensorSpec[], limits: ResourceLimits = MODEL_CHECK_LIMITS): Promise<CheckResult> {
  checkGoldenInputSize(inputs);
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
      finish(() => (res.ok ? resolve({ inputs: res.inputs, outputs: res.outputs }) : reject(new Error(`onnxruntime could not run the model: ${res.error}`)))),
    );
    worker.once('error', (err) => finish(() => reject(new Error(describeWorkerError(err, limits)))));
    worker.once('exit', (code) => finish(() => reject(new Error(`model check worker exited with code ${code}`))));
    const copy = new Uint8Array(bytes);
    worker.postMessage({ bytes: copy, inputs } satisfies CheckRequest, [copy.buffer]);
  });
}
