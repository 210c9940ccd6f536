import { addressKey } from '../auth/address-key.js';

/**
 * Failed MQTT logins per source address (an IPv6 /64 counts as one), in fixed windows. Pure and in
 * memory: the broker asks it before any credential lookup, so an address that keeps guessing costs no
 * database work.
 */
export interface AuthRateLimitSettings {
  /** Failed CONNECTs allowed per address within a window; past it, CONNECTs are refused unchecked. */
  maxFailures: number;
  windowMs: number;
  /** Addresses tracked at most; the oldest entry goes first (memory stays bounded under a scan). */
  maxAddresses?: number;
}

export const DEFAULT_MQTT_AUTH_LIMIT: AuthRateLimitSettings = { maxFailures: 20, windowMs: 60_000, maxAddresses: 10_000 };

export interface AuthRateLimit {
  /** True when the address has used up its failures in the current window. */
  blocked(address: string): boolean;
  /** Records a failed login. */
  failed(address: string): void;
}

export function createAuthRateLimit(settings: AuthRateLimitSettings, now: () => number = Date.now): AuthRateLimit {
  const maxAddresses = settings.maxAddresses ?? 10_000;
  const windows = new Map<string, { start: number; failures: number }>();

  function current(address: string): { start: number; failures: number } | undefined {
    const w = windows.get(address);
    if (w && now() - w.start >= settings.windowMs) {
      windows.delete(address);
      return undefined;
    }
    return w;
  }

  return {
    blocked(address) {
      const w = current(addressKey(address));
      return w !== undefined && w.failures >= settings.maxFailures;
    },
    failed(address) {
      const key = addressKey(address);
      const w = current(key);
      if (w) {
        w.failures++;
        return;
      }
      if (windows.size >= maxAddresses) windows.delete(windows.keys().next().value!);
      windows.set(key, { start: now(), failures: 1 });
    },
  };
}
