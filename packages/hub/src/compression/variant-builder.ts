import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AccuracyBudget, TypedTensor, VariantEvaluation } from '@edgefleet/shared';
import type { CalibrationSet } from './evaluation-data.js';
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

/** Bytes of the build process's stderr kept to name a crash (V8's OOM report is a few lines). */
const STDERR_TAIL_BYTES = 8192;

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

/** Why the build process ended without `done`, from its exit and the tail of its stderr. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null, stderr: string, limits: VariantBuildLimits): string {
  const oom = stderr.split('\n').find((line) => /heap out of memory|Reached heap limit|Allocation failed/i.test(line));
  if (oom) {
    return `the variant build ran out of memory (heap limited to ${limits.maxOldGenerationSizeMb} MB; raise EDGEFLEET_HUB_VARIANT_BUILD_HEAP_MB for larger models): ${oom.trim()}`;
  }
  if (signal === 'SIGKILL') {
    return 'the variant build process was killed by SIGKILL (the kernel does that when the machine runs out of memory, onnxruntime\'s native memory included)';
  }
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  const said = lastLines(stderr);
  return `the variant build process ${how} before finishing${said ? `: ${said}` : ''}`;
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ');
}

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
  const child = fork(BUILD_PROCESS_PATH, [], {
    execArgv: [`--max-old-space-size=${limits.maxOldGenerationSizeMb}`],
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    // A process that never started has nothing to wait for.
    child.once('error', () => child.pid === undefined && resolve());
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES);
  });
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
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };

  child.on('message', (msg: WorkerMessage) => {
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
  child.once('error', (err) => finish(new Error(`the variant build process failed: ${err.message}`)));
  // 'close' waits for stderr to end, so V8's out-of-memory report is read before the exit is named.
  child.once('close', (code, signal) => finish(new Error(describeExit(code, signal, stderr, limits))));

  const request: WorkerRequest = { job };
  child.send(request, (err) => {
    if (err) finish(new Error(`could not hand the job to the variant build process: ${err.message}`));
  });

  return {
    done,
    async cancel() {
      // The caller asked for it: a `done` nobody awaits any more must not become an unhandled rejection.
      done.catch(() => undefined);
      finish(new Error('the variant build was cancelled'));
      await exited;
    },
  };
}
