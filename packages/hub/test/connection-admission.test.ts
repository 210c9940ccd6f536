import { describe, expect, it, vi } from 'vitest';
import { createConnectionAdmission } from '../src/broker/connection-admission.js';

interface FakeSocket {
  id: number;
  destroyed: boolean;
  destroy(): void;
}
const socket = (id: number): FakeSocket => ({
  id,
  destroyed: false,
  destroy() {
    this.destroyed = true;
  },
});
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('connection admission', () => {
  it('keeps at most `limit` handshakes in flight, starts the rest in order as others settle, skips closed ones', async () => {
    const started: number[] = [];
    const admission = createConnectionAdmission<FakeSocket>({ limit: 2, slotMs: 60_000 }, (s) => started.push(s.id));
    const sockets = Array.from({ length: 6 }, (_, i) => socket(i));
    for (const s of sockets) admission.admit(s);
    expect(started).toEqual([0, 1]);
    expect(admission.waiting).toBe(4);

    sockets[2]!.destroy(); // closed while waiting
    admission.settle(sockets[0]!);
    admission.settle(sockets[0]!); // idempotent
    await nextTurn();
    expect(started).toEqual([0, 1, 3]);
    admission.settle(sockets[1]!);
    admission.settle(sockets[3]!);
    await nextTurn();
    expect(started).toEqual([0, 1, 3, 4, 5]);
    expect(admission.waiting).toBe(0);
  });

  it('frees the slot of a handshake that stays silent past slotMs, so idle sockets cannot hold the queue', async () => {
    let clock = 0;
    const started: number[] = [];
    const admission = createConnectionAdmission<FakeSocket>({ limit: 1, slotMs: 20, now: () => clock }, (s) => started.push(s.id));
    admission.admit(socket(0)); // connects and never sends CONNECT
    admission.admit(socket(1));
    expect(started).toEqual([0]);
    clock = 25;
    await vi.waitUntil(() => started.length === 2, { timeout: 2000, interval: 5 });
    expect(started).toEqual([0, 1]);
    admission.stop();
  });

  it('destroys the sockets still waiting when stopped', () => {
    const admission = createConnectionAdmission<FakeSocket>({ limit: 1, slotMs: 60_000 }, () => undefined);
    const sockets = [socket(0), socket(1), socket(2)];
    for (const s of sockets) admission.admit(s);
    admission.stop();
    expect(sockets.map((s) => s.destroyed)).toEqual([false, true, true]);
  });
});
