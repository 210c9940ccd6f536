import type { Logger } from 'pino';
import type { ModelTable } from '../inference/types.js';
import type { RecordBody } from '../hub-link/hub-link.js';
import { createSystemSampler, type SystemSampler } from './system-stats.js';

export interface TelemetryOptions {
  intervalMs: number;
  stateDir: string;
  table: ModelTable;
  publish: (body: RecordBody<'telemetry'>) => void;
  logger: Logger;
  sampler?: SystemSampler;
  /** The agent's resident set size in bytes (main.ts passes process.memoryUsage.rss). */
  rss: () => number;
}

export interface Telemetry {
  start(): void;
  /** Stops the timer and waits for a sample in progress; nothing is published once stop() is called. */
  stop(): Promise<void>;
  /** Samples and publishes once now (also what the timer does); joins a sample already running. */
  tick(): Promise<void>;
}

/** Publishes a telemetry record every interval: system stats plus per-model inference stats. */
export function createTelemetry(opts: TelemetryOptions): Telemetry {
  const log = opts.logger.child({ module: 'telemetry' });
  const sampler = opts.sampler ?? createSystemSampler({ stateDir: opts.stateDir, rss: opts.rss });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  async function sampleAndPublish(): Promise<void> {
    try {
      const system = await sampler.sample();
      // stop() may have been called while sampling: the hub link and store may be closing.
      if (stopped) return;
      const models = opts.table.snapshot().map((s) => ({ name: s.name, version: s.version, requests: s.requests, errors: s.errors, latencyMs: s.latencyMs }));
      opts.publish({ system, models });
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'telemetry sample failed');
    }
  }

  function tick(): Promise<void> {
    if (stopped) return Promise.resolve();
    running ??= sampleAndPublish().finally(() => {
      running = undefined;
    });
    return running;
  }

  return {
    start() {
      if (timer) return;
      stopped = false;
      timer = setInterval(() => void tick(), opts.intervalMs);
      void tick();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
    tick,
  };
}
