import { Worker, type ResourceLimits } from 'node:worker_threads';
import type { AccuracyBudget, TypedTensor, VariantEvaluation } from '@edgefleet/shared';
import type { CalibrationSet } from './evaluation-data.js';
import type { BuiltProfile } from './profiles.js';

export type { CalibrationSet } from './evaluation-data.js';

/**
 * Always the compiled worker: from src/compression/*.ts (vitest) and from dist/compression/*.js
 * alike, `../../dist/compression/` is packages/hub/dist/compression/, so run `npx tsc -b` before tests.
 */
const WORKER_URL = new URL('../../dist/compression/variant-build-worker.js', import.meta.url);

/**
 * The build worker's V8 heap limits. Models, samples and outputs are typed arrays (outside the heap),
 * but decoding and the graph transforms hold the protobuf model as JS objects, several times the
 * file's size: 1.5 GB covers models of a few hundred MB, and a larger one ends its own worker, never the hub.
 */
export const VARIANT_BUILD_LIMITS: ResourceLimits = { maxOldGenerationSizeMb: 1536, maxYoungGenerationSizeMb: 64, stackSizeMb: 4 };

/** Timed runs per model for the latency ratio, and untimed warm-up runs before them. */
export const DEFAULT_TIMING = { runs: 30, warmup: 5 } as const;

export interface VariantBuildJob {
  /** The fp32 ONNX bytes. Transferred to the worker: detached here once the build starts. */
  model: Uint8Array;
  /** The fp32 manifest's golden inputs (copied to the worker, so the caller keeps them for the manifests). */
  goldenInputs: TypedTensor[];
  /** Samples along dim 0. Its arrays are transferred to the worker: detached here once the build starts. */
  calibration?: CalibrationSet;
  profiles: BuiltProfile[];
  /** The version's budget; merged with DEFAULT_BUDGET by the worker. */
  budget: AccuracyBudget;
  pruneSparsity: number;
  calibrationMethod: 'minmax' | 'percentile' | 'auto';
  /** Latency measurement; DEFAULT_TIMING when absent (tests lower it: timing is not what they check). */
  timing?: { runs: number; warmup: number };
}

export interface BuildProgress {
  done: number;
  total: number;
  profile: string | null;
  step: 'transform' | 'evaluate' | 'compress' | null;
}

export interface BuiltVariant {
  profile: BuiltProfile;
  state: 'accepted' | 'rejected' | 'failed';
  /** The budget rules broken, with their numbers, or the error; null when accepted. */
  reason: string | null;
  /** The variant ONNX file; absent when failed (or rejected before it was built). */
  bytes?: Uint8Array;
  /** When zstd saves at least 10 % of the file. */
  transfer?: { encoding: 'zstd'; bytes: Uint8Array };
  evaluation?: VariantEvaluation;
  /** This variant's outputs on the golden inputs. */
  goldenOutputs?: TypedTensor[];
  /** max(1e-4, max |variant − fp32| / (1 + |fp32|)) on the golden inputs. */
  tolerance?: { atol: number };
}

/** Messages between the two sides; one job in, these out. */
export type WorkerRequest = { job: VariantBuildJob };
export type WorkerMessage =
  | { type: 'progress'; progress: BuildProgress }
  | { type: 'variant'; variant: BuiltVariant }
  | { type: 'done' }
  | { type: 'error'; error: string };

/**
 * The array itself when it owns its whole ArrayBuffer, else a copy that does: a view into a larger
 * buffer (a Node Buffer from the shared pool, a slice) or a SharedArrayBuffer is not ours to detach.
 */
export function ownedBytes<T extends ArrayBufferView>(view: T): T {
  if (view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength) return view;
  const copy = new ArrayBuffer(view.byteLength);
  new Uint8Array(copy).set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  // A Buffer becomes a plain Uint8Array: Buffer's constructor does not take an ArrayBuffer alone.
  const Ctor = (Buffer.isBuffer(view) ? Uint8Array : view.constructor) as new (b: ArrayBuffer) => T;
  return new Ctor(copy);
}

function requestOf(job: VariantBuildJob): { request: WorkerRequest; transfer: ArrayBuffer[] } {
  const model = ownedBytes(job.model);
  const calibration = job.calibration && {
    samples: job.calibration.samples,
    inputs: job.calibration.inputs.map((t) => ({ ...t, data: ownedBytes(t.data) })),
    labels: job.calibration.labels && ownedBytes(job.calibration.labels),
  };
  const transfer = [model, ...(calibration?.inputs.map((t) => t.data) ?? []), ...(calibration?.labels ? [calibration.labels] : [])].map((a) => a.buffer as ArrayBuffer);
  return { request: { job: { ...job, model, ...(calibration ? { calibration } : {}) } }, transfer: [...new Set(transfer)] };
}

function describeWorkerError(err: Error & { code?: string }, limits: ResourceLimits): string {
  if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return `the variant build ran out of memory (worker heap limited to ${limits.maxOldGenerationSizeMb} MB old generation): ${err.message}`;
  }
  return `the variant build worker crashed: ${err.message}`;
}

/**
 * Builds and evaluates the job's variants in one worker thread with heap limits, reporting progress
 * and each variant as it is ready. One profile failing makes that variant `failed` and the build goes
 * on; `done` rejects, naming the problem, when the build as a whole cannot run (the fp32 model does
 * not decode or load, bad calibration data, the worker crashes or runs out of memory) or is cancelled.
 */
export function runVariantBuild(
  job: VariantBuildJob,
  opts: { limits?: ResourceLimits; onProgress(p: BuildProgress): void; onVariant(v: BuiltVariant): void },
): { done: Promise<void>; cancel(): Promise<void> } {
  const limits = opts.limits ?? VARIANT_BUILD_LIMITS;
  const worker = new Worker(WORKER_URL, { resourceLimits: limits });
  let settled = false;
  let resolveDone!: () => void;
  let rejectDone!: (err: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  const finish = (err: Error | null) => {
    if (settled) return;
    settled = true;
    if (err) rejectDone(err);
    else resolveDone();
    void worker.terminate();
  };

  worker.on('message', (msg: WorkerMessage) => {
    if (settled) return;
    try {
      if (msg.type === 'progress') opts.onProgress(msg.progress);
      else if (msg.type === 'variant') opts.onVariant(msg.variant);
      else if (msg.type === 'done') finish(null);
      else finish(new Error(`variant build failed: ${msg.error}`));
    } catch (err) {
      // A throwing callback (say, a store write) ends this build, not the hub.
      finish(new Error(`the variant build's ${msg.type} handler failed: ${(err as Error).message}`));
    }
  });
  worker.once('error', (err) => finish(new Error(describeWorkerError(err, limits))));
  worker.once('exit', (code) => finish(new Error(`the variant build worker exited with code ${code} before finishing`)));

  try {
    const { request, transfer } = requestOf(job);
    worker.postMessage(request, transfer);
  } catch (err) {
    finish(new Error(`could not hand the job to the variant build worker: ${(err as Error).message}`));
  }

  return {
    done,
    async cancel() {
      // The caller asked for it: a `done` nobody awaits any more must not become an unhandled rejection.
      done.catch(() => undefined);
      finish(new Error('the variant build was cancelled'));
      await worker.terminate();
    },
  };
}
