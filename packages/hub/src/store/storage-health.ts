/** What `GET /api/v1/health` says about writes: failures since the last successful one, and the last error. */
export interface StorageHealthState {
  /** Failed writes since the last one that succeeded; above 0 the hub reports itself degraded. */
  errorsSinceSuccess: number;
  lastError: string | null;
  lastErrorAt: string | null;
}

export interface StorageHealth {
  /** Wraps a write: its outcome is recorded, its result or error passed through unchanged. */
  observe<A extends unknown[], R>(write: (...args: A) => R): (...args: A) => R;
  readonly state: Readonly<StorageHealthState>;
}

/**
 * Tracks whether the hub's writes are succeeding. A corrupt index can leave every read working
 * while every ingest batch fails; health has to say so instead of "ok".
 */
export function createStorageHealth(now: () => Date = () => new Date()): StorageHealth {
  const state: StorageHealthState = { errorsSinceSuccess: 0, lastError: null, lastErrorAt: null };
  return {
    observe(write) {
      return (...args) => {
        let result;
        try {
          result = write(...args);
        } catch (err) {
          state.errorsSinceSuccess++;
          state.lastError = err instanceof Error ? err.message : String(err);
          state.lastErrorAt = now().toISOString();
          throw err;
        }
        state.errorsSinceSuccess = 0;
        return result;
      };
    },
    state,
  };
}
