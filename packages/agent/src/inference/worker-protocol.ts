import type { DriftBaseline, DriftSummary, TensorSpec } from '@edgefleet/shared';
import type { FieldSampleCandidate, TensorData } from './types.js';

/** Messages between the worker pool (main thread) and a session worker. Plain data only. */

export interface WorkerInit {
  path: string;
  intraOpNumThreads: number;
  /** onnxruntime's intra-op spin-waiting; off lets several multi-threaded sessions share the cores. */
  allowSpinning: boolean;
  /**
   * When set, the worker also runs requests marked `narrow` on a second session of the same model with
   * this many intra-op threads (the adaptive pool's worker 0: wide alone, narrow beside other workers).
   * It is created on the first narrow request; until it is ready such requests run on the main session.
   */
  narrowThreads?: number;
  /** Execution providers to try in order, resolved once by the runtime (execution-providers.ts); absent: cpu. */
  executionProviders?: string[];
  /** Drift tracking of this model version (absent: not tracked). */
  drift?: WorkerDriftInit;
}

/** Field samples kept per window and worker (opt-in): raw inputs for the hub's review and retraining. */
export interface FieldSampleOptions {
  /** Rows kept at random per window (a reservoir, so every served row is equally likely); 0 = none. */
  randomPerWindow: number;
  /** Rows kept whose top-2 margin is below `hardMargin`, the most uncertain first; 0 = none. */
  hardPerWindow: number;
  /** Top-2 margin (probability of the best class minus the second) under which a row is a hard example. */
  hardMargin: number;
}

/** What a worker needs to track drift: the version's baseline (with its extraction) and the signature's specs. */
export interface WorkerDriftInit {
  baseline: DriftBaseline;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  fieldSamples?: FieldSampleOptions;
}

/** A tensor on the wire to and from a worker: onnxruntime type name, dims, and a transferred typed array. */
export interface WireTensor {
  name: string;
  type: string;
  dims: number[];
  data: TensorData;
  /** The whole ArrayBuffer under `data` belongs to this tensor's request and is moved, not only the view's bytes. */
  ownedBuffer?: boolean;
}

/**
 * One run of the session. `batch` holds the inputs of each request; with more than one, the worker
 * concatenates them along dimension 0, runs once and splits every output back by each request's rows.
 */
export interface RunRequest {
  type: 'run';
  id: number;
  batch: WireTensor[][];
  /** Run on the worker's narrow session (see WorkerInit.narrowThreads); ignored without one. */
  narrow?: boolean;
}

/** Takes the worker's drift window (after the runs posted before it); the worker starts a new one. */
export interface DriftTakeRequest {
  type: 'drift-take';
  id: number;
}

/** A field sample as it leaves the worker: its inputs are wire tensors (batch of 1, own buffers). */
export type WireFieldSample = Omit<FieldSampleCandidate, 'inputs'> & { inputs: WireTensor[] };

/** Sent instead of terminating a busy worker: it exits between runs. */
export interface ExitRequest {
  type: 'exit';
}

/** The answer to one request of a run. */
export type RunItem = { outputs: WireTensor[] } | { error: string };

export type WorkerReply =
  /** `provider`: what the main session opened with; `fallbacks`: providers that failed first, with onnxruntime's reason. */
  | { type: 'ready'; inputNames: string[]; outputNames: string[]; provider?: string; fallbacks?: { provider: string; reason: string }[] }
  | { type: 'init-error'; message: string }
  /** `unbatchable`: an output's dimension 0 did not follow the batch, so the pool must stop batching this model. */
  | { type: 'result'; id: number; items: RunItem[]; computeMs: number; unbatchable?: boolean }
  /** The window since the previous take: summary null when nothing was served (or drift is not tracked). */
  | { type: 'drift'; id: number; summary: DriftSummary | null; samples: WireFieldSample[]; error?: string };

/**
 * The ArrayBuffers to transfer with `tensors`. A view over part of a buffer is first copied into its
 * own, unless the tensor owns its whole buffer; a buffer shared by several tensors is transferred once.
 */
export function transferList(tensors: WireTensor[], buffers: ArrayBuffer[] = []): ArrayBuffer[] {
  for (const t of tensors) {
    const buf = t.data.buffer;
    if (buf instanceof ArrayBuffer) {
      if (buffers.includes(buf)) {
        if (t.ownedBuffer) continue; // already moving with another tensor of the same request
      } else if (t.ownedBuffer || (t.data.byteOffset === 0 && t.data.byteLength === buf.byteLength)) {
        buffers.push(buf);
        continue;
      }
    }
    t.data = t.data.slice() as TensorData;
    t.ownedBuffer = false;
    buffers.push(t.data.buffer as ArrayBuffer);
  }
  return buffers;
}
