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
}

export interface Telemetry {
  start(): void;
  stop(): void;
  /** Samples and publishes once now (also what the timer does). */
  tick(): Promise<void>;
}

/** Publishes a telemetry record every interval: system stats plus per-model inference stats. */
export function createTelemetry(opts: TelemetryOptions): Telemetry {
  const log = opts.logger.child({ module: 'telemetry' });
  const sampler = opts.sampler ?? createSystemSampler({ stateDir: opts.stateDir });
  let timer: NodeJS.Timeout | undefined;
  let busy = false;

  async function tick(): Promise<void> {
    if (busy) return;
    busy = true;
    try {
      const system = await sampler.sample();
      const models = opts.table.snapshot().map((s) => ({ name: s.name, version: s.version, requests: s.requests, errors: s.errors, latencyMs: s.latencyMs }));
      opts.publish({ system, models });
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'telemetry sample failed');
    } finally {
      busy = false;
    }
  }

  return {
    start() {
      if (timer) return;
      timer = setInterval(() => void tick(), opts.intervalMs);
      void tick();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
    tick,
  };
}
