import type { Logger } from 'pino';
import type { WorkerDriftPart } from './drift-takes.js';
import type { Rejectable, Slot, WorkerSlots } from './worker-slots.js';

// The adaptive pool's sizing: one worker while requests come one at a time, more once they queue.
//
// A lone request always runs on worker 0's wide session (an intra-op thread per core, what raw
// onnxruntime does by default: about half the latency of one thread on a quiet box). When requests
// queue behind it, extra 1-thread workers are spawned, and while any of them is running worker 0 runs
// on a 1-thread session of its own: parallel 1-thread sessions waste no time waiting for a straggling
// thread at every operator, which is what makes one multi-threaded session collapse when another
// process takes a core. An extra worker idle for `idleRetireMs` is retired, after its drift window has
// been taken.
//
// The choice depends only on our own requests, never on timings: under CPU contention from outside
// (another process busy on a core) a lone request is then as slow as on raw onnxruntime with default
// options (the target's baseline; on 2 cores ~2x its quiet time), while throughput under contention
// keeps the narrow sessions. An earlier version timed both sessions of worker 0 (medians, probes of
// the other session, margins) to run lone requests narrow under contention; the bookkeeping cost the
// quiet c1 p50 ~0.25 ms and its switches were hard to reason about.

export interface WorkerScalingOptions<J extends Rejectable> {
  workers: WorkerSlots<J>;
  /** How long an extra worker may stay idle before it is retired. */
  idleRetireMs: number;
  /** Takes a worker's drift window (absent: drift not tracked). */
  takeDrift?: (slot: Slot<J>) => Promise<WorkerDriftPart | null>;
  logger: Logger;
}

export interface WorkerScaling<J extends Rejectable> {
  /** More than one request at once: spawns the next extra worker unless one is still starting or all run. */
  grow(): void;
  /** A run was posted to `slot` now (it is not idle). */
  used(slot: Slot<J>): void;
  /** Whether a run posted now to `slot` belongs on worker 0's 1-thread session: another worker is running. */
  narrow(slot: Slot<J>): boolean;
  /** Drift windows of extra workers retired since the last call (they belong in the next take), once retirements under way have them. */
  retiredDrift(): Promise<WorkerDriftPart[]>;
  stop(): void;
}

export function createWorkerScaling<J extends Rejectable>(opts: WorkerScalingOptions<J>): WorkerScaling<J> {
  const log = opts.logger.child({ module: 'worker-scaling' });
  const { slots } = opts.workers;
  const lastUsed: number[] = slots.map(() => 0);
  const retired: WorkerDriftPart[] = [];
  const dismissing = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  function extras(): Array<Slot<J>> {
    return slots.slice(1).filter((s): s is Slot<J> => s !== undefined);
  }

  /**
   * Retires extra workers idle for idleRetireMs. Runs until stop(), also while only worker 0 is left:
   * a crashed extra worker is respawned (after a back-off) and must still be retired once idle.
   */
  function check(): void {
    const now = performance.now();
    for (const slot of extras()) {
      if (!slot.ready || slot.dismissed || slot.inFlight.size > 0 || now - lastUsed[slot.index]! < opts.idleRetireMs) continue;
      const done = dismiss(slot).finally(() => dismissing.delete(done));
      dismissing.add(done);
    }
  }

  async function dismiss(slot: Slot<J>): Promise<void> {
    // Not ready: the pool posts no run to it and a take leaves it out; its window goes to `retired`.
    slot.ready = false;
    slot.dismissed = true;
    const part = opts.takeDrift ? await opts.takeDrift(slot) : null;
    if (part) retired.push(part);
    log.debug({ worker: slot.index }, 'idle extra inference worker retired');
    await opts.workers.dismiss(slot);
  }

  return {
    grow() {
      if (stopped) return;
      if (slots.some((s) => s !== undefined && !s.ready && !s.dismissed)) return; // one still starting
      const index = slots.findIndex((s, i) => i > 0 && s === undefined);
      if (index < 0) return;
      lastUsed[index] = performance.now();
      if (!opts.workers.add(index)) return;
      timer ??= setInterval(check, Math.max(10, opts.idleRetireMs / 4));
      timer.unref();
    },
    used(slot) {
      lastUsed[slot.index] = performance.now();
    },
    narrow(slot) {
      if (slot.index !== 0) return false;
      for (let i = 1; i < slots.length; i++) if ((slots[i]?.inFlight.size ?? 0) > 0) return true;
      return false;
    },
    async retiredDrift() {
      if (dismissing.size > 0) await Promise.all([...dismissing]);
      return retired.splice(0);
    },
    stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
