import { summarySamples } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { RecordBody } from '../hub-link/hub-link.js';
import type { LoadedModel, ModelTable } from '../inference/types.js';
import type { DriftMetrics } from '../local-api/metrics.js';
import type { FieldSampleUploader } from './field-sample-upload.js';
import {
  DEFAULT_WINDOW_REQUESTS,
  DEFAULT_WINDOW_SEC,
  openWindow,
  windowDue,
  withinQuota,
  type FieldSampleQuota,
  type WindowPolicy,
  type WindowState,
} from './window-policy.js';

/**
 * Takes each active version's drift window (window-policy.ts decides when) from its workers and
 * publishes it as a `drift` record through the durable outbox; hands the window's field sample
 * candidates to the uploader. Only versions loaded with a baseline and able to take windows are
 * tracked. A version leaving service (switch, removal) has its window taken before it closes.
 */
export interface DriftReporter {
  start(): void;
  /** `table` with activate/deactivate that take the replaced version's window first; the deployment runner switches through it. */
  watch(table: ModelTable): ModelTable;
  /** Takes the window of a version leaving service now, while its workers are still there. */
  leaving(model: LoadedModel): void;
  /** Takes every active version's last window and waits for the publishes; then nothing more is taken. */
  stop(): Promise<void>;
}

export interface DriftReporterOptions {
  table: Pick<ModelTable, 'list' | 'get' | 'onRecord'>;
  publish: (body: RecordBody<'drift'>) => void;
  windowSec?: number;
  windowRequests?: number;
  /** Field sample candidates kept per window (default none). */
  fieldSamples?: FieldSampleQuota;
  uploader?: FieldSampleUploader;
  metrics: DriftMetrics;
  logger: Logger;
  now?: () => number;
}

/** How often open windows are looked at: a window closes at most this late after it is due. */
const MAX_TICK_MS = 1000;

export function createDriftReporter(opts: DriftReporterOptions): DriftReporter {
  const log = opts.logger.child({ module: 'drift' });
  const now = opts.now ?? Date.now;
  const policy: WindowPolicy = {
    windowMs: (opts.windowSec ?? DEFAULT_WINDOW_SEC) * 1000,
    windowRequests: opts.windowRequests ?? DEFAULT_WINDOW_REQUESTS,
  };
  const quota = opts.fieldSamples ?? { random: 0, hard: 0 };
  const open = new Map<LoadedModel, WindowState>();
  const taking = new Map<LoadedModel, Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let unsubscribe: (() => void) | undefined;
  let stopped = false;

  const tracks = (m: LoadedModel): boolean => m.drift !== undefined && typeof m.takeDrift === 'function';

  async function publishWindow(model: LoadedModel): Promise<void> {
    let window;
    try {
      window = await model.takeDrift!();
    } catch (err) {
      log.warn({ model: model.name, version: model.version, err: (err as Error).message }, 'taking the drift window failed; its samples are lost');
      return;
    }
    if (!window) return;
    const samples = window.summary ? summarySamples(model.drift!, window.summary) : 0;
    if (window.summary && samples > 0) {
      opts.publish({ model: model.name, version: model.version, summary: window.summary });
      opts.metrics.window(model.name, model.version, samples);
    }
    for (const sample of withinQuota(window.samples, quota)) opts.uploader?.enqueue(model.name, model.version, sample);
  }

  /** Starts a new window for `model` and publishes the one it closes; one take per model at a time. */
  function take(model: LoadedModel): Promise<void> {
    const running = taking.get(model);
    if (running) return running;
    open.set(model, openWindow(now()));
    // takeDrift is called synchronously here: before a close the caller may issue right after.
    const p = publishWindow(model).finally(() => taking.delete(model));
    taking.set(model, p);
    return p;
  }

  /**
   * The version's metric series go once it is no longer tracked (after its last window is counted),
   * unless the same name@version is active again under another load.
   */
  function untrack(model: LoadedModel): void {
    if (stopped) return;
    const again = opts.table.list().some((m) => m !== model && m.name === model.name && m.version === model.version && tracks(m));
    if (!again) opts.metrics.untrack(model.name, model.version);
  }

  /** Opens windows for newly active versions, forgets those gone, takes those due. */
  function tick(): void {
    const active = new Set(opts.table.list().filter(tracks));
    for (const model of open.keys()) {
      if (active.has(model)) continue;
      open.delete(model);
      void (taking.get(model) ?? Promise.resolve()).then(() => untrack(model));
    }
    for (const model of active) {
      const state = open.get(model);
      if (!state) open.set(model, openWindow(now()));
      else if (windowDue(policy, state, now())) void take(model);
    }
  }

  function leaving(model: LoadedModel): void {
    if (stopped || !open.has(model)) return;
    void take(model).then(() => untrack(model));
    open.delete(model);
  }

  return {
    start() {
      if (timer || stopped) return;
      tick();
      timer = setInterval(tick, Math.min(MAX_TICK_MS, policy.windowMs));
      timer.unref();
      unsubscribe = opts.table.onRecord((name, version, _latencyMs, ok) => {
        if (!ok) return;
        const model = opts.table.get(name);
        if (!model || model.version !== version || !tracks(model)) return;
        // A version activated since the last tick starts its window with its first request.
        let state = open.get(model);
        if (!state) open.set(model, (state = openWindow(now())));
        state.requests++;
        if (windowDue(policy, state, now()) === 'count') void take(model);
      });
      log.info({ windowSec: policy.windowMs / 1000, windowRequests: policy.windowRequests, fieldSamples: quota }, 'drift tracking started');
    },
    watch(table) {
      return {
        ...table,
        activate(model) {
          const previous = table.activate(model);
          if (previous) leaving(previous);
          return previous;
        },
        deactivate(name) {
          const previous = table.deactivate(name);
          if (previous) leaving(previous);
          return previous;
        },
      };
    },
    leaving,
    async stop() {
      if (stopped) return;
      if (timer) clearInterval(timer);
      unsubscribe?.();
      // Versions activated since the last tick included: what they served goes out too.
      for (const model of new Set([...open.keys(), ...opts.table.list().filter(tracks)])) void take(model);
      stopped = true;
      open.clear();
      await Promise.all(taking.values());
    },
  };
}
