import { EventEmitter } from 'node:events';
import { EdgefleetError } from '@edgefleet/shared';
import { sharedRows, takeBatch, type BatchableJob } from './batching.js';
import { createDriftTakes, type WorkerDriftPart } from './drift-takes.js';
import type { RunResult, WorkerPool, WorkerPoolOptions } from './worker-pool-api.js';
import { transferList, type RunItem, type WorkerReply } from './worker-protocol.js';
import { createWorkerScaling } from './worker-scaling.js';
import { createWorkerSlots, type Slot as WorkerSlot } from './worker-slots.js';

export type { PoolStats, RunResult, WorkerPool, WorkerPoolOptions } from './worker-pool-api.js';

interface Job extends BatchableJob {
  id: number;
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
}

type Slot = WorkerSlot<Job>;

/** Queued compute (ms) from which a batching model's jobs are spread over more than one worker. */
const SPILL_MS = 0.5;
const DEFAULT_MAX_QUEUED = 1024;
const DEFAULT_DRAIN_MS = 30_000;
const DEFAULT_IDLE_RETIRE_MS = 30_000;
/** How long closing waits for drift windows already asked for (each is one message through an idle worker). */
const TAKE_AT_CLOSE_MS = 2_000;

export function createWorkerPool(opts: WorkerPoolOptions): WorkerPool {
  const log = opts.logger.child({ module: 'worker-pool', path: opts.path });
  const maxInFlight = opts.maxInFlightPerWorker ?? 2;
  const maxQueued = Math.max(1, opts.maxQueued ?? DEFAULT_MAX_QUEUED);
  let maxBatch = Math.max(1, opts.maxBatch ?? 1);
  const events = new EventEmitter();
  const drift = createDriftTakes(log);
  const queue: Job[] = [];
  let nextId = 1;
  /** No new jobs (close() began); workers are no longer respawned. */
  let draining = false;
  /** Called when a draining pool has no queued or in-flight job left. */
  let onDrained: (() => void) | undefined;
  let closing: Promise<void> | undefined;
  let closed = false;
  let batches = 0;
  let batchedJobs = 0;
  let queuedRows = 0;
  /** Moving average of compute time per row, from the workers' replies (undefined until the first). */
  let msPerRow: number | undefined;

  const init = {
    path: opts.path,
    intraOpNumThreads: opts.threads,
    allowSpinning: opts.allowSpinning ?? true,
    ...(opts.executionProviders ? { executionProviders: opts.executionProviders } : {}),
    ...(opts.drift ? { drift: opts.drift } : {}),
  };
  const adaptive = opts.adaptive;
  const workers = createWorkerSlots<Job>({
    path: opts.path,
    workers: opts.workers,
    ...(adaptive ? { startWorkers: 1 } : {}),
    init: (index) => (adaptive && index === 0 ? { ...init, intraOpNumThreads: adaptive.wideThreads, narrowThreads: opts.threads } : init),
    logger: opts.logger,
    onReady: () => pump(),
    onReply,
    onExit(slot) {
      drift.settle(slot);
      if (closed) return;
      if (!slots.some((s) => s?.ready)) {
        rejectQueued(draining ? `model ${opts.path} is being unloaded and has no inference worker left` : `no inference worker is running for ${opts.path}; respawning`);
      }
      pump();
      checkDrained();
    },
  });
  const slots = workers.slots;
  const scaling = adaptive
    ? createWorkerScaling({
        workers,
        idleRetireMs: adaptive.idleRetireMs ?? DEFAULT_IDLE_RETIRE_MS,
        ...(opts.drift ? { takeDrift: (slot: Slot) => drift.request(slot, nextId++) } : {}),
        logger: log,
      })
    : undefined;

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
      // More than one request at once (a batch, or a run behind another): an adaptive pool adds a
      // worker, unless this model's queue is packed onto one on purpose.
      if (scaling && !pack && !draining && (jobs.length > 1 || slot.inFlight.size > 0)) scaling.grow();
      const id = nextId++;
      try {
        const buffers: ArrayBuffer[] = [];
        for (const job of jobs) transferList(job.inputs, buffers);
        slot.inFlight.set(id, jobs);
        const narrow = scaling?.narrow(slot) ?? false;
        scaling?.used(slot);
        slot.worker.postMessage({ type: 'run', id, batch: jobs.map((j) => j.inputs), ...(narrow ? { narrow } : {}) }, buffers);
        if (jobs.length > 1) {
          batches++;
          batchedJobs += jobs.length;
        }
        for (const job of jobs) events.emit('dispatch', { worker: slot.index, id: job.id, batch: jobs.length, narrow });
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
    if (drift.onReply(slot, msg) || msg.type !== 'result') return;
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
    checkDrained();
  }

  function idle(): boolean {
    return queue.length === 0 && slots.every((s) => !s || s.inFlight.size === 0);
  }

  function checkDrained(): void {
    if (draining && onDrained && idle()) onDrained();
  }

  /** Resolves true once nothing is queued or in flight, false when `drainMs` passes first. */
  function drain(drainMs: number): Promise<boolean> {
    if (idle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        onDrained = undefined;
        resolve(false);
      }, drainMs);
      timer.unref();
      onDrained = () => {
        onDrained = undefined;
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  async function shutDown(drainMs: number): Promise<void> {
    draining = true;
    scaling?.stop();
    workers.stopRespawning();
    const drained = await drain(drainMs);
    closed = true;
    const message = `model ${opts.path} was unloaded`;
    if (!drained) {
      log.warn({ drainMs, queued: queue.length }, 'requests still pending when the unload deadline passed; failing them');
      rejectQueued(`${message} before this request could finish (waited ${drainMs} ms)`);
    }
    await drift.answered(TAKE_AT_CLOSE_MS);
    const live = slots.filter((s): s is Slot => s !== undefined);
    await Promise.all(live.map((s) => workers.retire(s, new EdgefleetError('UNAVAILABLE', `${message} before this request could finish`))));
  }

  function close(drainMs = opts.drainTimeoutMs ?? DEFAULT_DRAIN_MS): Promise<void> {
    closing ??= shutDown(drainMs);
    return closing;
  }

  return {
    events,
    async start() {
      try {
        return await workers.start();
      } catch (err) {
        await close(0);
        throw err;
      }
    },
    run(inputs) {
      if (draining) return Promise.reject(new EdgefleetError('UNAVAILABLE', `model ${opts.path} is unloaded or being unloaded; it takes no new requests`));
      if (queue.length >= maxQueued) {
        return Promise.reject(
          new EdgefleetError('UNAVAILABLE', `inference queue full for ${opts.path}: ${queue.length} requests are waiting (at most ${maxQueued}); retry later`),
        );
      }
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
    async takeDrift() {
      const ready = slots.filter((s): s is Slot => s?.ready === true && !s.retiring);
      const [retired, parts] = await Promise.all([scaling?.retiredDrift() ?? [], Promise.all(ready.map((slot) => drift.request(slot, nextId++)))]);
      return [...retired, ...parts.filter((p): p is WorkerDriftPart => p !== null)];
    },
    async restartWorker(index) {
      const slot = slots[index];
      if (!slot) throw new EdgefleetError('NOT_FOUND', `no inference worker ${index}; the pool has ${slots.length}`);
      await workers.retire(slot);
    },
    close,
  };
}
