import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createUpdateLock } from '../src/local-api/update-lock.js';

// The registry alone, on vitest's fake clock (Date.now and timers move together), so TTLs of minutes
// are tested without waiting for them.

describe('update lock registry', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('acquires, lists and releases locks; ids are unique and a second release is false', () => {
    const lock = createUpdateLock();
    const a = lock.acquire('backup', 60);
    const b = lock.acquire('calibration', 30);
    expect(a).toEqual({ id: expect.any(String), reason: 'backup', acquiredAt: 1_700_000_000_000, expiresAt: 1_700_000_060_000 });
    expect(a.id).not.toBe(b.id);
    expect(lock.held().map((l) => l.reason)).toEqual(['backup', 'calibration']);
    expect(lock.release(a.id)).toBe(true);
    expect(lock.release(a.id)).toBe(false);
    expect(lock.release('no-such-lock')).toBe(false);
    expect(lock.held()).toEqual([b]);
  });

  it('caps the TTL at maxTtlSec and refuses a TTL that is not positive', () => {
    const lock = createUpdateLock({ maxTtlSec: 120 });
    expect(lock.acquire('long job', 3600).expiresAt - Date.now()).toBe(120_000);
    expect(createUpdateLock().acquire('x', 7200).expiresAt - Date.now()).toBe(3_600_000);
    expect(() => lock.acquire('x', 0)).toThrow(/ttlSec must be a positive number of seconds, got 0/);
    expect(() => lock.acquire('x', Number.NaN)).toThrow(/ttlSec/);
  });

  it('holds at most maxLocks at once, so a runaway local client cannot grow the registry without bound', () => {
    const lock = createUpdateLock({ maxLocks: 3 });
    const first = lock.acquire('a', 60);
    lock.acquire('b', 60);
    lock.acquire('c', 60);
    expect(() => lock.acquire('d', 60)).toThrow(/3 update locks are held already \(at most 3\)/);
    expect(lock.held()).toHaveLength(3);
    lock.release(first.id);
    expect(lock.acquire('d', 60).reason).toBe('d');
    // Expired locks make room too.
    vi.advanceTimersByTime(60_000);
    expect(lock.acquire('e', 60).reason).toBe('e');
  });

  it('drops a lock when its TTL runs out, by timer and when read', () => {
    let clock = 1000;
    const manual = createUpdateLock({ now: () => clock });
    manual.acquire('read lazily', 5);
    clock += 5000;
    expect(manual.held()).toEqual([]);

    const lock = createUpdateLock();
    const info = lock.acquire('job', 10);
    vi.advanceTimersByTime(9_999);
    expect(lock.held()).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(lock.held()).toEqual([]);
    expect(lock.release(info.id)).toBe(false);
  });

  it('waitUntilFree is true at once when nothing is held', async () => {
    const lock = createUpdateLock();
    await expect(lock.waitUntilFree(Date.now() + 1000)).resolves.toBe(true);
    // Free beats a past deadline: nothing holds the switch.
    await expect(lock.waitUntilFree(Date.now() - 1)).resolves.toBe(true);
  });

  it('waitUntilFree is true once the last lock is released, not before', async () => {
    const lock = createUpdateLock();
    const a = lock.acquire('a', 600);
    const b = lock.acquire('b', 600);
    let outcome: boolean | undefined;
    void lock.waitUntilFree(Date.now() + 300_000).then((free) => (outcome = free));
    lock.release(a.id);
    await vi.advanceTimersByTimeAsync(0);
    expect(outcome).toBeUndefined();
    lock.release(b.id);
    await vi.advanceTimersByTimeAsync(0);
    expect(outcome).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('waitUntilFree is true when the last lock expires before the deadline', async () => {
    const lock = createUpdateLock();
    lock.acquire('short', 30);
    const wait = lock.waitUntilFree(Date.now() + 60_000);
    await vi.advanceTimersByTimeAsync(30_000);
    await expect(wait).resolves.toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('waitUntilFree is false at the deadline while a lock is still held, and then leaves no timer', async () => {
    const lock = createUpdateLock();
    lock.acquire('long', 600);
    let outcome: boolean | undefined;
    void lock.waitUntilFree(Date.now() + 60_000).then((free) => (outcome = free));
    await vi.advanceTimersByTimeAsync(59_999);
    expect(outcome).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome).toBe(false);
    expect(lock.held()).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(1); // the lock's own expiry
    await expect(lock.waitUntilFree(Date.now())).resolves.toBe(false);
  });

  it('waitUntilFree is false on abort, and at once when the signal is already aborted', async () => {
    const lock = createUpdateLock();
    lock.acquire('job', 600);
    const controller = new AbortController();
    const wait = lock.waitUntilFree(Date.now() + 60_000, controller.signal);
    controller.abort();
    await expect(wait).resolves.toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    await expect(lock.waitUntilFree(Date.now() + 60_000, controller.signal)).resolves.toBe(false);
  });

  it('waits past setTimeout’s 24.8-day range without firing early', async () => {
    const day = 24 * 3600;
    const lock = createUpdateLock({ maxTtlSec: 40 * day });
    lock.acquire('decommissioning', 40 * day);
    let outcome: boolean | undefined;
    void lock.waitUntilFree(Date.now() + 30 * day * 1000).then((free) => (outcome = free));
    await vi.advanceTimersByTimeAsync(2 ** 31);
    expect(outcome).toBeUndefined();
    await vi.advanceTimersByTimeAsync(30 * day * 1000 - 2 ** 31);
    expect(outcome).toBe(false);
  });
});
