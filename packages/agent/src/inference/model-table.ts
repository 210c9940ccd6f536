import { LatencyWindow } from './latency-window.js';
import { RecentWindow } from './recent-window.js';
import type { LoadedModel, ModelStatsSnapshot, ModelTable, RecordListener } from './types.js';

interface Stats {
  name: string;
  version: string;
  requests: number;
  errors: number;
  window: LatencyWindow;
}

const EMPTY = { requests: 0, errors: 0, p99Ms: 0 };

/** The active model (and the standby) per name, and per (name, version) request counters and latency windows. */
export function createModelTable(): ModelTable {
  const active = new Map<string, LoadedModel>();
  const standby = new Map<string, LoadedModel>();
  const stats = new Map<string, Stats>();
  const recent = new Map<string, { name: string; version: string; window: RecentWindow }>();
  const listeners = new Set<RecordListener>();
  const key = (name: string, version: string) => `${name}\u0000${version}`;
  const held = (name: string, version: string) => active.get(name)?.version === version || standby.get(name)?.version === version;

  return {
    activate(model) {
      const previous = active.get(model.name);
      active.set(model.name, model);
      // A standby that becomes active is no longer standby.
      if (standby.get(model.name) === model) standby.delete(model.name);
      return previous === model ? undefined : previous;
    },
    deactivate(name) {
      const previous = active.get(name);
      active.delete(name);
      return previous;
    },
    get: (name) => active.get(name),
    list: () => [...active.values()],
    setStandby(model) {
      const before = standby.get(model.name);
      standby.set(model.name, model);
      return before === model ? undefined : before;
    },
    takeStandby(name, model) {
      const s = standby.get(name);
      if (!s || (model && s !== model)) return undefined;
      standby.delete(name);
      return s;
    },
    standby: (name) => standby.get(name),
    listStandby: () => [...standby.values()],
    record(name, version, latencyMs, ok) {
      const k = key(name, version);
      let s = stats.get(k);
      if (!s) {
        s = { name, version, requests: 0, errors: 0, window: new LatencyWindow() };
        stats.set(k, s);
      }
      s.requests++;
      if (!ok) s.errors++;
      s.window.add(latencyMs);
      let r = recent.get(k);
      if (!r) {
        r = { name, version, window: new RecentWindow() };
        recent.set(k, r);
      }
      r.window.add(latencyMs, ok);
      for (const listener of listeners) listener(name, version, latencyMs, ok);
    },
    snapshot(): ModelStatsSnapshot[] {
      const out: ModelStatsSnapshot[] = [];
      for (const [k, s] of stats) {
        out.push({ name: s.name, version: s.version, requests: s.requests, errors: s.errors, latencyMs: s.window.drain() });
        // A version that is no longer active is reported one last time, then forgotten.
        if (active.get(s.name)?.version !== s.version) stats.delete(k);
      }
      // The standby's recent requests stay: they are the baseline if it becomes active and is replaced again.
      for (const [k, r] of recent) if (!held(r.name, r.version)) recent.delete(k);
      return out;
    },
    recent: (name, version) => recent.get(key(name, version))?.window.stats() ?? EMPTY,
    onRecord(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
