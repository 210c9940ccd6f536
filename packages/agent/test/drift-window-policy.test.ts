import { describe, expect, it } from 'vitest';
import { openWindow, windowDue, withinQuota } from '../src/drift/window-policy.js';

describe('drift window policy', () => {
  const policy = { windowMs: 60_000, windowRequests: 5000 };

  it('stays open until the time or the request count is reached, whichever first', () => {
    const w = openWindow(1000);
    expect(windowDue(policy, w, 1000)).toBeNull();
    expect(windowDue(policy, w, 60_999)).toBeNull();
    expect(windowDue(policy, w, 61_000)).toBe('time');
    expect(windowDue(policy, { ...w, requests: 4999 }, 2000)).toBeNull();
    expect(windowDue(policy, { ...w, requests: 5000 }, 2000)).toBe('count');
    // Both reached: the count is named, it is what a busy device hits.
    expect(windowDue(policy, { ...w, requests: 5000 }, 61_000)).toBe('count');
  });

  it('keeps at most the quota of random and hard field samples, in the order given', () => {
    const c = (reason: 'random' | 'hard', id: number) => ({ reason, id });
    const all = [c('hard', 1), c('random', 2), c('hard', 3), c('random', 4), c('hard', 5)];
    expect(withinQuota(all, { random: 1, hard: 2 }).map((x) => x.id)).toEqual([1, 2, 3]);
    expect(withinQuota(all, { random: 0, hard: 0 })).toEqual([]);
    expect(withinQuota(all, { random: 5, hard: 5 })).toHaveLength(5);
  });
});
