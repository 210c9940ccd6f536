import type { Logger } from 'pino';
import type { WorkerDriftPart } from './drift-takes.js';
import type { Rejectable, Slot, WorkerSlots } from './worker-slots.js';

// The adaptive pool's sizing: one worker while requests come one at a time, more once they queue.
//
// Worker 0 runs a lone request on a session with an intra-op thread per core (what raw onnxruntime
// does by default: about half the latency of one thread). When requests queue behind it, extra
// 1-thread workers are spawned, and while any of them is running worker 0 switches to a 1-thread
// session of its own: parallel 1-thread sessions waste no time waiting for a straggling thread at
// every operator, which is what makes one multi-threaded session collapse when another process takes
// a core. An extra worker idle for `idleRetireMs` is retired, after its drift window has been taken.
//
// The wide session is only faster on cores it has to itself: with another process busy, a lone
// request took ~2x longer on it than on one thread (conv net, 2 cores). So worker 0 keeps the median
// of each session's last SAMPLES lone-request times per row, as the pool saw them (post to reply) (a median: on a shared box single runs take
// 10x longer now and then, and a moving average followed them), runs lone requests on the faster one, and every
// PROBE_EVERY lone runs tries the other for PROBE_RUNS runs to notice when that changes. (Trying the narrow session only
// once the wide one ran slower than its best missed contention present from the start, so worker 0
// creates its narrow session after its first PROBE_EVERY lone runs: a second session, not a worker.)

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
  /** Whether a run posted now to `slot` belongs on worker 0's 1-thread session: another worker is running, or it is the faster one. */
  narrow(slot: Slot<J>): boolean;
  /** A lone run of `slot` took `msPerRow` from post to reply, on worker 0's narrow session or not. */
  observe(slot: Slot<J>, narrow: boolean, msPerRow: number): void;
  /** Drift windows of extra workers retired since the last call (they belong in the next take), once retirements under way have them. */
  retiredDrift(): Promise<WorkerDriftPart[]>;
  stop(): void;
}

/** Lone runs between tries of worker 0's other session; CLEAR_PROBE_EVERY while one is CLEAR times faster. */
const PROBE_EVERY = 32;
const CLEAR_PROBE_EVERY = 128;
const CLEAR = 1.5;
/**
 * Consecutive lone runs of each try. The first run after a switch is not counted: the idle session's
 * pool thread has gone to sleep and its caches are cold, so a single-run try always looked slow and,
 * once narrow was chosen on a busy moment, the wide session never won again (c1 stuck at ~2x).
 */
const PROBE_RUNS = 3;
/**
 * The narrow session serves lone requests only when this much faster than the wide one: where both
 * take about as long (a tiny model) the choice flipped on noise, and every switch costs a cold run.
 */
const NARROW_MARGIN = 0.85;
/** Recent lone runs per session whose median decides. */
const SAMPLES = 5;

/** The median of the last SAMPLES values added (undefined before the first). */
function recentMedian(): { add(v: number): void; readonly value: number | undefined } {
  const ring: number[] = [];
  let next = 0;
  let value: number | undefined;
  return {
    add(v) {
      ring[next] = v;
      next = (next + 1) % SAMPLES;
      const sorted = [...ring].sort((a, b) => a - b);
      value = sorted[Math.floor(sorted.length / 2)];
    },
    get value() {
      return value;
    },
  };
}

export function createWorkerScaling<J extends Rejectable>(opts: WorkerScalingOptions<J>): WorkerScaling<J> {
  const log = opts.logger.child({ module: 'worker-scaling' });
  const { slots } = opts.workers;
  const lastUsed: number[] = slots.map(() => 0);
  const retired: WorkerDriftPart[] = [];
  const dismissing = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  /** Worker 0's lone-request ms per row, post to reply, on each session (recent medians), and its lone runs. */
  const wide = recentMedian();
  const narrowed = recentMedian();
  let loneRuns = 0;
  /** The session of the last lone run observed (a switch makes the next sample a cold one). */
  let lastNarrow: boolean | undefined;

  /** Whether worker 0 runs a lone request narrow: on the faster session, trying the other now and then. */
  function loneNarrow(): boolean {
    const wideMs = wide.value;
    const narrowMs = narrowed.value;
    if (wideMs === undefined) return false;
    if (narrowMs === undefined) return ++loneRuns % PROBE_EVERY >= PROBE_EVERY - PROBE_RUNS;
    // Every try costs its runs on the slower session and a cold run after it: fewer while the answer is clear.
    const every = narrowMs > wideMs * CLEAR || wideMs > narrowMs * CLEAR ? CLEAR_PROBE_EVERY : PROBE_EVERY;
    const probe = ++loneRuns % every >= every - PROBE_RUNS;
    return narrowMs < wideMs * NARROW_MARGIN !== probe;
  }

  function extras(): Array<Slot<J>> {
    return slots.slice(1).filter((s): s is Slot<J> => s !== undefined);
  }

  /** Retires extra workers idle for idleRetireMs; stops checking once only worker 0 is left. */
  function check(): void {
    const now = performance.now();
    const live = extras();
    for (const slot of live) {
      if (!slot.ready || slot.dismissed || slot.inFlight.size > 0 || now - lastUsed[slot.index]! < opts.idleRetireMs) continue;
      const done = dismiss(slot).finally(() => dismissing.delete(done));
      dismissing.add(done);
    }
    if (live.length === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
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
      return loneNarrow();
    },
    observe(slot, narrow, msPerRow) {
      if (slot.index !== 0) return;
      const switched = lastNarrow !== undefined && lastNarrow !== narrow;
      lastNarrow = narrow;
      if (!switched) (narrow ? narrowed : wide).add(msPerRow);
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
