import { LatencyWindow } from './latency-window.js';
import type { LoadedModel, ModelStatsSnapshot, ModelTable } from './types.js';

interface Stats {
  name: string;
  version: string;
  requests: number;
  errors: number;
  window: LatencyWindow;
}

/** The active model per name, and per (name, version) request counters and latency windows. */
export function createModelTable(): ModelTable {
  const active = new Map<string, LoadedModel>();
  const stats = new Map<string, Stats>();

  return {
    activate(model) {
      const previous = active.get(model.name);
      active.set(model.name, model);
      return previous === model ? undefined : previous;
    },
    deactivate(name) {
      const previous = active.get(name);
      active.delete(name);
      return previous;
    },
    get: (name) => active.get(name),
    list: () => [...active.values()],
    record(name, version, latencyMs, ok) {
      const key = `${name}\u0000${version}`;
      let s = stats.get(key);
      if (!s) {
        s = { name, version, requests: 0, errors: 0, window: new LatencyWindow() };
        stats.set(key, s);
      }
      s.requests++;
      if (!ok) s.errors++;
      s.window.add(latencyMs);
    },
    snapshot(): ModelStatsSnapshot[] {
      const out: ModelStatsSnapshot[] = [];
      for (const [key, s] of stats) {
        out.push({ name: s.name, version: s.version, requests: s.requests, errors: s.errors, latencyMs: s.window.drain() });
        // A version that is no longer active is reported one last time, then forgotten.
        if (active.get(s.name)?.version !== s.version) stats.delete(key);
      }
      return out;
    },
  };
}
