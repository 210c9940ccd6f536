/**
 * When a drift window closes (pure): after `windowMs` since it opened, or once `windowRequests`
 * requests were served in it, whichever comes first. Requests stand in for samples: the request
 * path does not know how many rows (dimension 0) each one carried, and the count bound only keeps a
 * busy device's windows from growing past what the hub wants to merge at once.
 */
export interface WindowPolicy {
  windowMs: number;
  windowRequests: number;
}

export interface WindowState {
  /** Epoch ms the window opened. */
  openedAt: number;
  /** Successful requests recorded since. */
  requests: number;
}

export type WindowCause = 'time' | 'count';

export const DEFAULT_WINDOW_SEC = 60;
export const DEFAULT_WINDOW_REQUESTS = 5000;

export function openWindow(now: number): WindowState {
  return { openedAt: now, requests: 0 };
}

/** Why the window should be taken now, or null while it stays open. */
export function windowDue(policy: WindowPolicy, state: WindowState, now: number): WindowCause | null {
  if (state.requests >= policy.windowRequests) return 'count';
  if (now - state.openedAt >= policy.windowMs) return 'time';
  return null;
}

export interface FieldSampleQuota {
  random: number;
  hard: number;
}

/** The candidates kept of one window: at most `quota.random` random and `quota.hard` hard ones, in the order given. */
export function withinQuota<T extends { reason: 'random' | 'hard' }>(candidates: readonly T[], quota: FieldSampleQuota): T[] {
  const left = { ...quota };
  return candidates.filter((c) => left[c.reason]-- > 0);
}
