import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EdgefleetError } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { sharedRows, takeBatch, type BatchableJob } from './batching.js';
import { transferList, type RunItem, type WireTensor, type WorkerInit, type WorkerReply } from './worker-protocol.js';

/**
 * The worker script. From dist/ it is the sibling `session-worker.js`. When this module runs from
 * src/ (vitest transpiles TypeScript on the fly, but a worker thread needs plain JavaScript), the
 * sibling does not exist and the built copy in the package's dist/ is used: build before testing.
 */
export function sessionWorkerUrl(): URL {
  const sibling = new URL('./session-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(sibling))) return sibling;
  const built = new URL('../../dist/inference/session-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new EdgefleetError('INTERNAL', `session worker not found at ${fileURLToPath(sibling)} or ${fileURLToPath(built)}; run \`npx tsc -b\``);
}

export interface RunResult {
  outputs: WireTensor[];
  computeMs: number;
}

interface Job extends BatchableJob {
  id: number;
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  index: number;
  worker: Worker;
  ready: boolean;
  /** Asked to exit (restart or close): counts as a worker that was ready, for the respawn back-off. */
  retiring?: boolean;
  /** Runs posted to this worker, by run id: the jobs of each (one, or a batch). */
  inFlight: Map<number, Job[]>;
}

export interface WorkerPoolOptions {
  path: string;
  workers: number;
  threads: number;
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
  /** Stops one worker as a crash would: its in-flight jobs are rejected and a new worker replaces it. */
  restartWorker(index: number): Promise<void>;
  /** Emits `dispatch` ({ worker, id, batch }) when a job is posted to a worker (batch: jobs in that run). */
  readonly events: EventEmitter;
  close(): Promise<void>;
}

const RESPAWN_MIN_MS = 100;
/** Queued compute (ms) from which a batching model's jobs are spread over more than one worker. */
const SPILL_MS = 0.5;
const RESPAWN_MAX_MS = 10_000;

export function createWorkerPool(opts: WorkerPoolOptions): WorkerPool {
  const log = opts.logger.child({ module: 'worker-pool', path: opts.path });
  const maxInFlight = opts.maxInFlightPerWorker ?? 2;
  let maxBatch = Math.max(1, opts.maxBatch ?? 1);
  const init: WorkerInit = { path: opts.path, intraOpNumThreads: opts.threads, allowSpinning: opts.allowSpinning ?? true };
  const url = sessionWorkerUrl();
  const events = new EventEmitter();
  const slots: Array<Slot | undefined> = new Array(opts.workers).fill(undefined);
  const queue: Job[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let nextId = 1;
  let closed = false;
  let failures = 0;
  let batches = 0;
  let batchedJobs = 0;
  let queuedRows = 0;
  /** Moving average of compute time per row, from the workers' replies (undefined until the first). */
  let msPerRow: number | undefined;

  /**
   * The ready worker with the fewest runs in flight; ties go to the lowest index, so a lone request
   * always lands on the same (cache-warm) worker instead of alternating between cold ones. For a
   * batching model whose queued work is shorter than a hand-off is worth (SPILL_MS), only the first
   * worker is used: waking another costs the main thread and the cores more than the run itself, and
   * the queue that builds behind the busy worker becomes its next batch.
   */
  function packed(): boolean {
    return maxBatch > 1 && msPerRow !== undefined && queuedRows * msPerRow < SPILL_MS;
  }

  function pickWorker(pack: boolean): Slot | undefined {
    let best: Slot | undefined;
    for (const s of slots) {
      if (!s?.ready) continue;
      if (s.inFlight.size < maxInFlight && (!best || s.inFlight.size < best.inFlight.size)) best = s;
      if (pack) break;
    }
    return best;
  }

  /** The next run's jobs; when spreading, at most a share of the queue per ready worker. */
  function nextBatch(pack: boolean): Job[] {
    const ready = pack ? 1 : slots.reduce((n, s) => n + (s?.ready ? 1 : 0), 0);
    const jobs = takeBatch(queue, maxBatch, Math.ceil(queue.length / Math.max(1, ready)));
    for (const job of jobs) queuedRows -= job.rows;
    return jobs;
  }

  function pump(): void {
    while (queue.length > 0) {
      const pack = packed();
      const slot = pickWorker(pack);
      if (!slot) return;
      const jobs = nextBatch(pack);
      const id = nextId++;
      try {
        const buffers: ArrayBuffer[] = [];
        for (const job of jobs) transferList(job.inputs, buffers);
        slot.inFlight.set(id, jobs);
        slot.worker.postMessage({ type: 'run', id, batch: jobs.map((j) => j.inputs) }, buffers);
        if (jobs.length > 1) {
          batches++;
          batchedJobs += jobs.length;
        }
        for (const job of jobs) events.emit('dispatch', { worker: slot.index, id: job.id, batch: jobs.length });
      } catch (err) {
        slot.inFlight.delete(id);
        const error = new EdgefleetError('INTERNAL', `could not hand the request to an inference worker: ${(err as Error).message}`);
        for (const job of jobs) job.reject(error);
      }
    }
  }

  function rejectQueued(message: string): void {
    queuedRows = 0;
    for (const job of queue.splice(0)) job.reject(new EdgefleetError('UNAVAILABLE', message));
  }

  function settle(job: Job, item: RunItem | undefined, computeMs: number): void {
    if (item && 'outputs' in item) job.resolve({ outputs: item.outputs, computeMs });
    else job.reject(new EdgefleetError('INTERNAL', `inference failed: ${item?.error ?? 'the worker returned no answer for this request'}`));
  }

  function onReply(slot: Slot, msg: WorkerReply): void {
    if (msg.type !== 'result' || slot.retiring) return;
    const jobs = slot.inFlight.get(msg.id);
    if (!jobs) return;
    slot.inFlight.delete(msg.id);
    if (msg.unbatchable && maxBatch > 1) {
      maxBatch = 1;
      log.warn('an output does not follow the batch along dimension 0; dynamic batching is off for this model');
    }
    const rows = jobs.reduce((n, j) => n + j.rows, 0);
    const sample = msg.computeMs / Math.max(1, rows);
    msPerRow = msPerRow === undefined ? sample : msPerRow + 0.2 * (sample - msPerRow);
    jobs.forEach((job, i) => settle(job, msg.items[i], msg.computeMs));
    pump();
  }

  /** Spawns the worker of slot `index`; resolves with the session's names once it is ready. */
  function spawn(index: number): Promise<{ inputNames: string[]; outputNames: string[] }> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(url, { workerData: init, name: `ef-session-${index}` });
      const slot: Slot = { index, worker, ready: false, inFlight: new Map() };
      slots[index] = slot;
      worker.on('message', (msg: WorkerReply) => {
        if (msg.type === 'ready') {
          slot.ready = true;
          failures = 0;
          resolve({ inputNames: msg.inputNames, outputNames: msg.outputNames });
          pump();
        } else if (msg.type === 'init-error') {
          reject(new EdgefleetError('INVALID_MODEL', `onnxruntime cannot load ${opts.path}: ${msg.message}`));
          void worker.terminate();
        } else {
          onReply(slot, msg);
        }
      });
      worker.on('error', (err) => log.error({ worker: index, err: err.message }, 'inference worker crashed'));
      worker.on('exit', (code) => {
        const wasReady = slot.ready || slot.retiring === true;
        slot.ready = false;
        if (slots[index] === slot) slots[index] = undefined;
        for (const jobs of slot.inFlight.values()) {
          for (const job of jobs) job.reject(new EdgefleetError('INTERNAL', `inference worker ${index} exited (code ${code}) while running this request`));
        }
        slot.inFlight.clear();
        reject(new EdgefleetError('INVALID_MODEL', `inference worker ${index} exited (code ${code}) before its session was ready`));
        if (closed) return;
        log.warn({ worker: index, code, wasReady }, 'inference worker exited; respawning');
        if (!wasReady) failures++;
        if (!slots.some((s) => s?.ready)) rejectQueued(`no inference worker is running for ${opts.path}; respawning`);
        respawnLater(index);
        pump();
      });
    });
  }

  function respawnLater(index: number): void {
    const delay = failures === 0 ? 0 : Math.min(RESPAWN_MAX_MS, RESPAWN_MIN_MS * 2 ** (failures - 1));
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (closed) return;
      spawn(index).catch((err: Error) => log.error({ worker: index, err: err.message }, 'respawned inference worker failed'));
    }, delay);
    timer.unref();
    timers.add(timer);
  }

  /**
   * Stops one worker: its in-flight jobs fail with `error` now, or as the worker exits (answers that
   * arrive meanwhile are ignored, as a crash would lose them). A worker in the middle of a run is not
   * terminated but asked to exit, which it does once the run returns: terminating a thread inside
   * onnxruntime's native run can abort the whole process (a Napi::Error thrown as the run returns
   * into a dying environment).
   */
  function retire(slot: Slot, error?: Error): Promise<unknown> {
    const busy = slot.inFlight.size > 0;
    slot.retiring = true;
    slot.ready = false;
    if (error) {
      for (const jobs of slot.inFlight.values()) for (const job of jobs) job.reject(error);
      slot.inFlight.clear();
    }
    if (!busy) return slot.worker.terminate();
    const exited = new Promise((resolve) => slot.worker.once('exit', resolve));
    slot.worker.postMessage({ type: 'exit' });
    return exited;
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    for (const t of timers) clearTimeout(t);
    rejectQueued(`model ${opts.path} was unloaded`);
    const workers = slots.filter((s): s is Slot => s !== undefined);
    await Promise.all(workers.map((s) => retire(s, new EdgefleetError('UNAVAILABLE', `model ${opts.path} was unloaded`))));
  }

  return {
    events,
    async start() {
      try {
        const names = await Promise.all(slots.map((_, i) => spawn(i)));
        return names[0]!;
      } catch (err) {
        await close();
        throw err;
      }
    },
    run(inputs) {
      if (closed) return Promise.reject(new EdgefleetError('UNAVAILABLE', `model ${opts.path} was unloaded`));
      return new Promise<RunResult>((resolve, reject) => {
        const job: Job = { id: nextId++, inputs, rows: Math.max(1, sharedRows(inputs)), resolve, reject };
        queuedRows += job.rows;
        queue.push(job);
        pump();
      });
    },
    stats() {
      const live = slots.filter((s): s is Slot => s !== undefined);
      return {
        workers: live.length,
        ready: live.filter((s) => s.ready).length,
        inFlight: live.reduce((n, s) => n + [...s.inFlight.values()].reduce((m, jobs) => m + jobs.length, 0), 0),
        queued: queue.length,
        batches,
        batchedJobs,
      };
    },
    async restartWorker(index) {
      const slot = slots[index];
      if (!slot) throw new EdgefleetError('NOT_FOUND', `no inference worker ${index}; the pool has ${slots.length}`);
      await retire(slot);
    },
    close,
  };
}
