import { fileURLToPath } from 'node:url';
import type { TensorSpec } from '@edgefleet/shared';
import { runForkedJob } from '../compression/forked-job.js';
import type { BaselineResult } from './baseline-compute.js';

/** Always the compiled entry (see variant-builder.ts): run `npx tsc -b` before tests. */
const BUILD_PROCESS_PATH = fileURLToPath(new URL('../../dist/drift/baseline-build-process.js', import.meta.url));

export interface BaselineBuildJob {
  /** The fp32 ONNX file (the build process reads it). */
  modelPath: string;
  /** The reference (or calibration) file, calibration-file.ts format. */
  referencePath: string;
  signature: { inputs: TensorSpec[]; outputs: TensorSpec[] };
}
export type BaselineBuildRequest = { job: BaselineBuildJob };
export type BaselineBuildMessage = ({ type: 'done' } & BaselineResult) | { type: 'error'; error: string };

/**
 * Builds a baseline in a child process with a heap limit (onnxruntime never runs on the hub's event
 * loop nor in a thread of it). `done` rejects naming the problem (the model cannot run the samples,
 * a feature has no finite values, the process crashed); `cancel` kills it and waits for its exit.
 */
export function runBaselineBuild(job: BaselineBuildJob, opts: { heapMb: number }): { done: Promise<BaselineResult>; cancel(): Promise<void> } {
  let result: BaselineResult | undefined;
  const run = runForkedJob<BaselineBuildRequest, BaselineBuildMessage>(
    { job },
    {
      path: BUILD_PROCESS_PATH,
      heapMb: opts.heapMb,
      what: 'the baseline build',
      heapHint: 'the build shares EDGEFLEET_HUB_VARIANT_BUILD_HEAP_MB with variant builds',
      onMessage(msg) {
        if (msg.type === 'error') return new Error(msg.error);
        result = { baseline: msg.baseline, summaryBytes: msg.summaryBytes };
        return { done: true };
      },
    },
  );
  return { done: run.done.then(() => result as BaselineResult), cancel: run.cancel };
}
