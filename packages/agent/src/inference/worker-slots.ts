import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EdgefleetError } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { WorkerInit, WorkerReply } from './worker-protocol.js';
import { noteSessionProviders } from '../telemetry/session-providers.js';

// The lifecycle of a pool's session workers: spawn, ready, respawn with back-off, retire. What runs
// on them (queueing, batching, dispatch) is the pool's business (worker-pool.ts).

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

/** What a slot holds in flight: anything that can be failed. */
export interface Rejectable {
  reject: (e: Error) => void;
}

export interface Slot<J extends Rejectable> {
  index: number;
  worker: Worker;
  ready: boolean;
  /** Asked to exit (restart or close): counts as a worker that was ready, for the respawn back-off. */
  retiring?: boolean;
  /** Retired for good (an adaptive pool's idle extra worker): not respawned when it exits. */
  dismissed?: boolean;
  /** Runs posted to this worker, by run id: the jobs of each (one, or a batch). */
  inFlight: Map<number, J[]>;
}

export interface SessionNames {
  inputNames: string[];
  outputNames: string[];
}

export interface WorkerSlotsOptions<J extends Rejectable> {
  path: string;
  /** Slots (the most workers the pool may run). */
  workers: number;
  /** Workers spawned by start() (default all); the others only when add() asks. */
  startWorkers?: number;
  /** What slot `index`'s worker is started with. */
  init: (index: number) => WorkerInit;
  logger: Logger;
  /** A worker's session is ready to take runs. */
  onReady: (slot: Slot<J>) => void;
  /** A run's answer from a worker that is not retiring. */
  onReply: (slot: Slot<J>, msg: WorkerReply) => void;
  /** A worker exited; its in-flight jobs have been failed already. */
  onExit: (slot: Slot<J>) => void;
}

export interface WorkerSlots<J extends Rejectable> {
  readonly slots: ReadonlyArray<Slot<J> | undefined>;
  /** Spawns the first `startWorkers` workers; resolves with the session's names once all are ready. */
  start(): Promise<SessionNames>;
  /** Spawns slot `index`'s worker unless it has one or is about to respawn it; false when it did nothing. */
  add(index: number): boolean;
  /** Retires an idle worker for good: its slot stays empty until add() fills it again. */
  dismiss(slot: Slot<J>): Promise<unknown>;
  /** From now on an exited worker is not replaced (pending respawns are cancelled). */
  stopRespawning(): void;
  retire(slot: Slot<J>, error?: Error): Promise<unknown>;
}

const RESPAWN_MIN_MS = 100;
const RESPAWN_MAX_MS = 10_000;

export function createWorkerSlots<J extends Rejectable>(opts: WorkerSlotsOptions<J>): WorkerSlots<J> {
  const log = opts.logger.child({ module: 'worker-slots', path: opts.path });
  const url = sessionWorkerUrl();
  const slots: Array<Slot<J> | undefined> = new Array(opts.workers).fill(undefined);
  const timers = new Set<NodeJS.Timeout>();
  /** Slots with a respawn timer pending. */
  const respawning = new Set<number>();
  let respawn = true;
  let failures = 0;

  /** Spawns the worker of slot `index`; resolves with the session's names once it is ready. */
  function spawn(index: number): Promise<SessionNames> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(url, { workerData: opts.init(index), name: `ef-session-${index}` });
      const slot: Slot<J> = { index, worker, ready: false, inFlight: new Map() };
      slots[index] = slot;
      worker.on('message', (msg: WorkerReply) => {
        if (msg.type === 'ready') {
          // Retired while starting (close() during a grow): it is exiting on its own, take no runs.
          if (slot.retiring) return;
          slot.ready = true;
          noteSessionProviders(msg.provider, msg.fallbacks);
          // Every worker of a load tries the same providers: worker 0 speaks for them, once per load.
          if (index === 0 && msg.fallbacks?.length) {
            for (const f of msg.fallbacks) log.warn({ provider: f.provider, reason: f.reason, using: msg.provider }, `execution provider ${f.provider} failed; falling back to ${msg.provider}: ${f.reason}`);
          }
          failures = 0;
          resolve({ inputNames: msg.inputNames, outputNames: msg.outputNames });
          opts.onReady(slot);
        } else if (msg.type === 'init-error') {
          reject(new EdgefleetError('INVALID_MODEL', `onnxruntime cannot load ${opts.path}: ${msg.message}`));
          void worker.terminate();
        } else if (!slot.retiring) {
          opts.onReply(slot, msg);
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
        if (respawn && !slot.dismissed) {
          log.warn({ worker: index, code, wasReady }, 'inference worker exited; respawning');
          if (!wasReady) failures++;
          respawnLater(index);
        }
        opts.onExit(slot);
      });
    });
  }

  function respawnLater(index: number): void {
    const delay = failures === 0 ? 0 : Math.min(RESPAWN_MAX_MS, RESPAWN_MIN_MS * 2 ** (failures - 1));
    respawning.add(index);
    const timer = setTimeout(() => {
      timers.delete(timer);
      respawning.delete(index);
      if (!respawn || slots[index]) return;
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
   * into a dying environment). A worker still starting is inside onnxruntime's synchronous model load,
   * so it too is asked: the request waits in its port until the session is made.
   */
  function retire(slot: Slot<J>, error?: Error): Promise<unknown> {
    const busy = slot.inFlight.size > 0 || (!slot.ready && !slot.retiring);
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

  return {
    slots,
    async start() {
      const count = Math.min(slots.length, Math.max(1, opts.startWorkers ?? slots.length));
      const names = await Promise.all(slots.slice(0, count).map((_, i) => spawn(i)));
      return names[0]!;
    },
    add(index) {
      if (!respawn || slots[index] || respawning.has(index) || index >= slots.length) return false;
      spawn(index).catch((err: Error) => log.error({ worker: index, err: err.message }, 'added inference worker failed'));
      return true;
    },
    dismiss(slot) {
      slot.dismissed = true;
      return retire(slot);
    },
    stopRespawning() {
      respawn = false;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      respawning.clear();
    },
    retire,
  };
}
