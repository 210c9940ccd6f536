import type { Logger } from 'pino';
import type { LoadedModel, ModelTable } from '../inference/types.js';

/** auto: keep the previous version loaded when memory allows; on/off: always/never. */
export type StandbyPolicy = 'auto' | 'on' | 'off';

export interface StandbySettings {
  policy: StandbyPolicy;
  /** How long a replaced version stays loaded at least (a health window may ask for longer). */
  keepMs: number;
  /** Bytes of memory free now (os.freemem in the agent). */
  freeMemory: () => number;
}

export const DEFAULT_STANDBY_KEEP_MS = 10 * 60_000;
const MEMORY_HEADROOM_BYTES = 256 * 1024 * 1024;
/** A loaded model takes a few times its file in memory (the session, its worker, the arena). */
const MEMORY_PER_FILE_BYTE = 4;

/** Pure: whether a model of `fileBytes` may stay loaded beside the active one. */
export function standbyFits(policy: StandbyPolicy, freeBytes: number, fileBytes: number): boolean {
  if (policy !== 'auto') return policy === 'on';
  return freeBytes > MEMORY_PER_FILE_BYTE * fileBytes + MEMORY_HEADROOM_BYTES;
}

/**
 * Keeps the version a switch replaced loaded in the model table's standby slot for a while, so a
 * rollback (by the hub or by the health window) is a switch and not a load; then closes it. Its
 * file stays on disk either way (pruneOldVersions keeps one previous version).
 */
export interface StandbyKeeper {
  /** After a switch: keeps `previous` as standby for at least `minKeepMs` (and the configured time) when memory allows, else closes it. */
  keep(previous: LoadedModel, fileBytes: number, minKeepMs?: number): Promise<void>;
  /** Takes that name's standby if it is that digest (the caller activates it or closes it). */
  take(name: string, sha256: string): LoadedModel | undefined;
  /** Closes that name's standby, if any. */
  drop(name: string): Promise<void>;
  /** Closes every standby and clears the timers. */
  stop(): Promise<void>;
}

export function createStandbyKeeper(opts: { table: ModelTable; settings: StandbySettings; logger: Logger }): StandbyKeeper {
  const { table, settings, logger } = opts;
  const timers = new Map<LoadedModel, NodeJS.Timeout>();

  async function close(model: LoadedModel, why: string): Promise<void> {
    const timer = timers.get(model);
    if (timer) clearTimeout(timer);
    timers.delete(model);
    try {
      // Requests it still holds finish first (the runtime drains a closing pool).
      await model.close();
      logger.info({ model: model.name, version: model.version, why }, 'previous version unloaded');
    } catch (err) {
      logger.warn({ model: model.name, version: model.version, err: (err as Error).message }, 'closing the previous version failed');
    }
  }

  function forget(model: LoadedModel): LoadedModel {
    const timer = timers.get(model);
    if (timer) clearTimeout(timer);
    timers.delete(model);
    return model;
  }

  return {
    async keep(previous, fileBytes, minKeepMs = 0) {
      const free = settings.freeMemory();
      if (!standbyFits(settings.policy, free, fileBytes)) {
        await close(previous, settings.policy === 'off' ? 'standby is off' : `not enough free memory (${Math.round(free / 2 ** 20)} MB) to keep it loaded`);
        return;
      }
      const keepMs = Math.max(settings.keepMs, minKeepMs);
      const replaced = table.setStandby(previous);
      if (replaced) await close(replaced, 'replaced by a newer previous version');
      const timer = setTimeout(() => {
        if (table.takeStandby(previous.name, previous)) void close(previous, `kept ${keepMs} ms`);
      }, keepMs);
      timer.unref();
      timers.set(previous, timer);
      logger.info({ model: previous.name, version: previous.version, keepMs }, 'previous version kept loaded as standby');
    },
    take(name, sha256) {
      const s = table.standby(name);
      if (!s || s.sha256 !== sha256) return undefined;
      return forget(table.takeStandby(name, s)!);
    },
    async drop(name) {
      const s = table.takeStandby(name);
      if (s) await close(s, 'model removed');
    },
    async stop() {
      const all = table.listStandby();
      for (const s of all) table.takeStandby(s.name, s);
      await Promise.all(all.map((s) => close(s, 'agent stopping')));
    },
  };
}
