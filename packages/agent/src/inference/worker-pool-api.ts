import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { WorkerDriftPart } from './drift-takes.js';
import type { WireTensor, WorkerDriftInit } from './worker-protocol.js';

// The worker pool's contract (worker-pool.ts implements it).

export interface RunResult {
  outputs: WireTensor[];
  computeMs: number;
}

export interface WorkerPoolOptions {
  path: string;
  workers: number;
  threads: number;
  /** Execution providers each session tries, in order (absent: cpu). */
  executionProviders?: string[];
  logger: Logger;
  /** Runs handed to one worker at a time: 2 keeps it busy while the next result travels back. */
  maxInFlightPerWorker?: number;
  /**
   * Dynamic batching: while every worker is busy, queued jobs with the same input names, types and
   * trailing dimensions are joined along dimension 0 (up to this many rows) into one run. A lone job is
   * never held back (Triton's max_queue_delay 0). 1 turns batching off; only models whose inputs and
   * outputs all have a variable dimension 0 should batch.
   */
  maxBatch?: number;
  /** onnxruntime intra-op spin-waiting (default on when workers × threads fits the cores). */
  allowSpinning?: boolean;
  /** Requests waiting for a worker beyond which run() refuses with UNAVAILABLE (default 1024). */
  maxQueued?: number;
  /** How long close() lets queued and in-flight requests finish before failing them (default 30 s). */
  drainTimeoutMs?: number;
  /** Drift tracking in every worker (absent: not tracked). */
  drift?: WorkerDriftInit;
  /**
   * Adaptive sizing (worker-scaling.ts): `workers` becomes the most the pool runs, `threads` those of
   * the extra workers; worker 0 alone serves lone requests with `wideThreads`, the rest start as
   * requests queue and retire after `idleRetireMs` (default 30 s) idle. Absent: a fixed pool.
   */
  adaptive?: { wideThreads: number; idleRetireMs?: number };
}

export interface PoolStats {
  workers: number;
  ready: number;
  /** Jobs (requests) posted to workers and not answered yet. */
  inFlight: number;
  queued: number;
  /** Runs that joined more than one job, and the jobs they carried, since start. */
  batches: number;
  batchedJobs: number;
}

export interface WorkerPool {
  /** Resolves when every worker has created its session; rejects (INVALID_MODEL) when one cannot. */
  start(): Promise<{ inputNames: string[]; outputNames: string[] }>;
  /** Queues a job; its input buffers are transferred to the worker that runs it. */
  run(inputs: WireTensor[]): Promise<RunResult>;
  stats(): PoolStats;
  /**
   * Takes the drift window of every ready worker (each after the runs already posted to it; each
   * starts a new window). A worker that exits before answering is left out: what it saw is lost.
   */
  takeDrift(): Promise<WorkerDriftPart[]>;
  /** Stops one worker as a crash would: its in-flight jobs are rejected and a new worker replaces it. */
  restartWorker(index: number): Promise<void>;
  /** Emits `dispatch` ({ worker, id, batch, narrow }) when a job is posted to a worker (batch: jobs in that run; narrow: on worker 0's 1-thread session). */
  readonly events: EventEmitter;
  /**
   * Refuses new jobs at once, lets queued and in-flight ones finish (for at most `drainMs`, default the
   * pool's drainTimeoutMs; then they fail with UNAVAILABLE), then retires the workers. Safe twice.
   */
  close(drainMs?: number): Promise<void>;
}
