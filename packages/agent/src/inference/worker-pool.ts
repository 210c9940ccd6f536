import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EdgefleetError } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { transferList, type WireTensor, type WorkerInit, type WorkerReply } from './worker-protocol.js';

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

interface Job {
  id: number;
  inputs: WireTensor[];
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  index: number;
  worker: Worker;
  ready: boolean;
  inFlight: Map<number, Job>;
}

export interface WorkerPoolOptions {
  path: string;
  workers: number;
  threads: number;
  logger: Logger;
  /** Jobs handed to one worker at a time: 2 keeps it busy while the next result travels back. */
  maxInFlightPerWorker?: number;
}

export interface PoolStats {
  workers: number;
  ready: number;
  inFlight: number;
  queued: number;
}

export interface WorkerPool {
  /** Resolves when every worker has created its session; rejects (INVALID_MODEL) when one cannot. */
  start(): Promise<{ inputNames: string[]; outputNames: string[] }>;
  /** Queues a job; its input buffers are transferred to the worker that runs it. */
  run(inputs: WireTensor[]): Promise<RunResult>;
  stats(): PoolStats;
  /** Terminates one worker as a crash would: its in-flight jobs are rejected and a new worker replaces it. */
  restartWorker(index: number): Promise<void>;
  /** Emits `dispatch` ({ worker, id }) when a job is posted to a worker. */
  readonly events: EventEmitter;
  close(): Promise<void>;
}

const RESPAWN_MIN_MS = 100;
const RESPAWN_MAX_MS = 10_000;

export function createWorkerPool(opts: WorkerPoolOptions): WorkerPool {
  const log = opts.logger.child({ module: 'worker-pool', path: opts.path });
  const maxInFlight = opts.maxInFlightPerWorker ?? 2;
  const init: WorkerInit = { path: opts.path, intraOpNumThreads: opts.threads };
  const url = sessionWorkerUrl();
  const events = new EventEmitter();
  const slots: Array<Slot | undefined> = new Array(opts.workers).fill(undefined);
  const queue: Job[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let nextId = 1;
  let rr = 0;
  let closed = false;
  let failures = 0;

  function pickWorker(): Slot | undefined {
    let best: Slot | undefined;
    for (let k = 0; k < slots.length; k++) {
      const s = slots[(rr + k) % slots.length];
      if (s?.ready && s.inFlight.size < maxInFlight && (!best || s.inFlight.size < best.inFlight.size)) best = s;
    }
    if (best) rr = (best.index + 1) % slots.length;
    return best;
  }

  function pump(): void {
    while (queue.length > 0) {
      const slot = pickWorker();
      if (!slot) return;
      const job = queue.shift()!;
      try {
        const transfer = transferList(job.inputs);
        slot.inFlight.set(job.id, job);
        slot.worker.postMessage({ type: 'run', id: job.id, inputs: job.inputs }, transfer);
        events.emit('dispatch', { worker: slot.index, id: job.id });
      } catch (err) {
        slot.inFlight.delete(job.id);
        job.reject(new EdgefleetError('INTERNAL', `could not hand the request to an inference worker: ${(err as Error).message}`));
      }
    }
  }

  function rejectQueued(message: string): void {
    for (const job of queue.splice(0)) job.reject(new EdgefleetError('UNAVAILABLE', message));
  }

  function onReply(slot: Slot, msg: WorkerReply): void {
    if (msg.type !== 'result' && msg.type !== 'error') return;
    const job = slot.inFlight.get(msg.id);
    if (!job) return;
    slot.inFlight.delete(msg.id);
    if (msg.type === 'result') job.resolve({ outputs: msg.outputs, computeMs: msg.computeMs });
    else job.reject(new EdgefleetError('INTERNAL', `inference failed: ${msg.message}`));
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
        const wasReady = slot.ready;
        slot.ready = false;
        if (slots[index] === slot) slots[index] = undefined;
        for (const job of slot.inFlight.values()) {
          job.reject(new EdgefleetError('INTERNAL', `inference worker ${index} exited (code ${code}) while running this request`));
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

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    for (const t of timers) clearTimeout(t);
    rejectQueued(`model ${opts.path} was unloaded`);
    const workers = slots.filter((s): s is Slot => s !== undefined);
    for (const s of workers) {
      for (const job of s.inFlight.values()) job.reject(new EdgefleetError('UNAVAILABLE', `model ${opts.path} was unloaded`));
      s.inFlight.clear();
    }
    await Promise.all(workers.map((s) => s.worker.terminate()));
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
        queue.push({ id: nextId++, inputs, resolve, reject });
        pump();
      });
    },
    stats() {
      const live = slots.filter((s): s is Slot => s !== undefined);
      return {
        workers: live.length,
        ready: live.filter((s) => s.ready).length,
        inFlight: live.reduce((n, s) => n + s.inFlight.size, 0),
        queued: queue.length,
      };
    },
    async restartWorker(index) {
      const slot = slots[index];
      if (!slot) throw new EdgefleetError('NOT_FOUND', `no inference worker ${index}; the pool has ${slots.length}`);
      await slot.worker.terminate();
    },
    close,
  };
}
