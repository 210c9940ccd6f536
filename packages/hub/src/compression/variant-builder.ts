import { fileURLToPath } from 'node:url';
import type { AccuracyBudget, TypedTensor, VariantEvaluation } from '@edgefleet/shared';
import type { CalibrationSet } from './evaluation-data.js';
import { runForkedJob } from './forked-job.js';
import type { BuiltProfile } from './profiles.js';

export type { CalibrationSet } from './evaluation-data.js';

/**
 * Always the compiled entry: from src/compression/*.ts (vitest) and from dist/compression/*.js
 * alike, `../../dist/compression/` is packages/hub/dist/compression/, so run `npx tsc -b` before tests.
 */
const BUILD_PROCESS_PATH = fileURLToPath(new URL('../../dist/compression/variant-build-worker.js', import.meta.url));

/**
 * The build process's V8 heap limit. A child process, not a worker thread: onnxruntime's native code
 * cannot be stopped safely mid-run inside a thread (Worker.terminate() there aborted the whole hub
 * with a Napi::Error), and a process's crash or OOM kill ends only itself. Models, samples and
 * outputs are typed arrays (outside the heap), but decoding and the graph transforms hold the
 * protobuf model as JS objects, several times the file's size: 1.5 GB covers models of a few hundred MB.
 */
export interface VariantBuildLimits {
  /** --max-old-space-size of the build process, MB. */
  maxOldGenerationSizeMb: number;
}
export const VARIANT_BUILD_LIMITS: VariantBuildLimits = { maxOldGenerationSizeMb: 1536 };

export const DEFAULT_TIMING = { runs: 30, warmup: 5 } as const;

export interface VariantBuildJob {
  /** The fp32 ONNX bytes (copied to the build process). */
  model: Uint8Array;
  /** The fp32 manifest's golden inputs (copied to the build process, so the caller keeps them for the manifests). */
  goldenInputs: TypedTensor[];
  /** Samples along dim 0, copied to the build process. */
  calibration?: CalibrationSet;
  /**
   * A stored calibration file (calibration-file.ts format) instead of `calibration`: the build
   * process reads and decodes it, so a set of hundreds of MB is never copied on the hub's event loop.
   */
  calibrationFile?: string;
  profiles: BuiltProfile[];
  /** The version's budget; merged with DEFAULT_BUDGET by the build process. */
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

/** Messages between the two processes (V8 serialization: typed arrays arrive as typed arrays); one job in, these out. */
export type WorkerRequest = { job: VariantBuildJob };
export type WorkerMessage =
  | { type: 'progress'; progress: BuildProgress }
  | { type: 'variant'; variant: BuiltVariant }
  | { type: 'done' }
  | { type: 'error'; error: string };

/**
 * Builds and evaluates the job's variants in one child process with a heap limit, reporting progress
 * and each variant as it is ready. One profile failing makes that variant `failed` and the build goes
 * on; `done` rejects, naming the problem, when the build as a whole cannot run (the fp32 model does
 * not decode or load, bad calibration data, the process crashes, runs out of memory or is killed)
 * or is cancelled. Cancelling kills the process (SIGKILL: onnxruntime cannot be interrupted mid-run
 * any other way) and resolves once it has exited.
 */
export function runVariantBuild(
  job: VariantBuildJob,
  opts: { limits?: VariantBuildLimits; onProgress(p: BuildProgress): void; onVariant(v: BuiltVariant): void },
): { done: Promise<void>; cancel(): Promise<void> } {
  const limits = opts.limits ?? VARIANT_BUILD_LIMITS;
  const request: WorkerRequest = { job };
  return runForkedJob<WorkerRequest, WorkerMessage>(request, {
    path: BUILD_PROCESS_PATH,
    heapMb: limits.maxOldGenerationSizeMb,
    what: 'the variant build',
    heapHint: 'raise EDGEFLEET_HUB_VARIANT_BUILD_HEAP_MB for larger models',
    onMessage(msg) {
      if (msg.type === 'progress') opts.onProgress(msg.progress);
      else if (msg.type === 'variant') opts.onVariant(msg.variant);
      else if (msg.type === 'done') return { done: true };
      else return new Error(`variant build failed: ${msg.error}`);
    },
  });
}
