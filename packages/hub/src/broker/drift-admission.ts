import { summaryInvalidity, summaryMismatch, type MessageOf } from '@edgefleet/shared';
import type { DriftBaselines } from '../drift/drift-baselines.js';

/** Why ingest dropped drift records, counted apart from the other kinds' drops. */
export interface DriftRejections {
  /** No baseline for the model/version (unknown model, unknown version, or drift off for it). */
  unknownVersion: number;
  /** The summary does not fit its version's baseline (layout, lengths, step sums). */
  mismatch: number;
  /** Not a drift message: undecodable, against the schema, or its window runs backwards. */
  invalid: number;
  /** Over the drift payload size limit. */
  tooLarge: number;
}
export type DriftRejection = keyof DriftRejections;

export const emptyDriftRejections = (): DriftRejections => ({ unknownVersion: 0, mismatch: 0, invalid: 0, tooLarge: 0 });

/**
 * Whether a decoded drift message may be stored: null, or the reason and what was wrong. Without a
 * baseline source no version has a baseline, so every drift record is unknown (drift off).
 */
export function driftRejection(baselines: DriftBaselines | undefined, message: MessageOf<'drift'>): { reason: DriftRejection; error: string } | null {
  const invalid = summaryInvalidity(message.summary);
  if (invalid) return { reason: 'invalid', error: invalid };
  const baseline = baselines?.get(message.model, message.version);
  if (!baseline) return { reason: 'unknownVersion', error: `no drift baseline for ${message.model}@${message.version}: unknown model or version, or drift is off for it` };
  const mismatch = summaryMismatch(baseline, message.summary);
  return mismatch ? { reason: 'mismatch', error: mismatch } : null;
}

/**
 * At most one log line per device and interval; the lines held back are counted and reported with
 * the next one, so a device publishing garbage every second costs one line a minute.
 */
export function createLogThrottle(intervalMs: number, clock: () => number = Date.now) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return {
    /** The number of lines suppressed since the last one when `key` may log now, else null. */
    take(key: string): number | null {
      const now = clock();
      const entry = last.get(key);
      if (entry && now - entry.at < intervalMs) {
        entry.suppressed++;
        return null;
      }
      // Bounded: entries older than the interval carry nothing worth keeping.
      if (last.size >= 10_000) for (const [k, e] of last) if (now - e.at >= intervalMs) last.delete(k);
      last.set(key, { at: now, suppressed: 0 });
      return entry?.suppressed ?? 0;
    },
  };
}
