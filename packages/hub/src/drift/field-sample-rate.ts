/**
 * Per-device sliding-window limit on field-sample uploads (in memory: a restart forgets it, which at
 * worst lets a device send one more window's worth). Pure apart from the clock it is given.
 */
export interface FieldSampleRateLimit {
  /** Takes one upload slot for the device, or answers how many seconds until one frees up. */
  take(deviceId: string, nowMs: number): { ok: true } | { ok: false; retryAfterSeconds: number };
}

export function createFieldSampleRateLimit(perWindow: number, windowMs = 3_600_000): FieldSampleRateLimit {
  /** Accept times per device, oldest first; never longer than perWindow. */
  const accepted = new Map<string, number[]>();
  return {
    take(deviceId, nowMs) {
      const times = (accepted.get(deviceId) ?? []).filter((t) => t > nowMs - windowMs);
      if (times.length >= perWindow) {
        accepted.set(deviceId, times);
        return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((times[0]! + windowMs - nowMs) / 1000)) };
      }
      times.push(nowMs);
      accepted.set(deviceId, times);
      return { ok: true };
    },
  };
}
