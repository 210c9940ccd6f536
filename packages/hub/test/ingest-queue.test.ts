import { describe, expect, it, vi } from 'vitest';
import { createIngestQueue } from '../src/broker/ingest-queue.js';

/** A queue that records every commit and every afterCommit it makes, and the order of events. */
function recordingQueue(opts: { maxBatch?: number; highWater?: number; failWhen?: (items: readonly number[]) => boolean } = {}) {
  const commits: number[][] = [];
  const after: Array<{ items: number[]; result: string }> = [];
  const errors: Array<{ err: unknown; count: number }> = [];
  const events: string[] = [];
  const queue = createIngestQueue<number, string>({
    commit(items) {
      if (opts.failWhen?.(items)) throw new Error('disk on fire');
      commits.push([...items]);
      events.push(`commit ${items.join(',')}`);
      return `batch of ${items.length}`;
    },
    afterCommit(items, result) {
      after.push({ items: [...items], result });
      events.push(`after ${items.join(',')}`);
    },
    onError: (err, count) => errors.push({ err, count }),
    ...(opts.maxBatch === undefined ? {} : { maxBatch: opts.maxBatch }),
    ...(opts.highWater === undefined ? {} : { highWater: opts.highWater }),
  });
  return { queue, commits, after, errors, events };
}

describe('ingest queue', () => {
  it('commits in batches of at most maxBatch, in order, and answers each item only after its commit', () => {
    const { queue, commits, after, events } = recordingQueue({ maxBatch: 3 });
    const answered: Array<[number, Error | null]> = [];
    for (let i = 1; i <= 7; i++) {
      queue.push(i, (err) => {
        answered.push([i, err]);
        events.push(`done ${i}`);
      });
    }
    queue.flush();
    expect(commits).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    expect(after).toEqual([
      { items: [1, 2, 3], result: 'batch of 3' },
      { items: [4, 5, 6], result: 'batch of 3' },
      { items: [7], result: 'batch of 1' },
    ]);
    expect(answered).toEqual([1, 2, 3, 4, 5, 6, 7].map((i) => [i, null]));
    // Each item's callback runs after the commit holding it and before the side effects (afterCommit).
    expect(events.slice(0, 5)).toEqual(['commit 1,2,3', 'done 1', 'done 2', 'done 3', 'after 1,2,3']);
    expect(queue.length).toBe(0);
  });

  it('an item pushed from a callback while its batch is answered joins a later batch, and nothing is lost or repeated', () => {
    const { queue, commits } = recordingQueue({ maxBatch: 2 });
    const answered: number[] = [];
    const push = (i: number) =>
      queue.push(i, (err) => {
        expect(err).toBeNull();
        answered.push(i);
        // The broker answers a PUBACK, which lets the same connection's next record in synchronously.
        if (i < 6) push(i + 10);
      });
    push(1);
    push(2);
    queue.flush();
    const committed = commits.flat();
    expect(committed.sort((a, b) => a - b)).toEqual([1, 2, 11, 12]);
    expect(answered.sort((a, b) => a - b)).toEqual([1, 2, 11, 12]);
    expect(commits.every((b) => b.length <= 2)).toBe(true);
    expect(queue.length).toBe(0);
  });

  it('a failed commit answers every item of that batch with the error, counts it, and later batches still commit', () => {
    const { queue, commits, after, errors } = recordingQueue({ maxBatch: 2, failWhen: (items) => items.includes(3) });
    const answered = new Map<number, string | null>();
    for (let i = 1; i <= 5; i++) queue.push(i, (err) => answered.set(i, err ? err.message : null));
    queue.flush();
    expect(commits).toEqual([[1, 2], [5]]);
    expect(after.map((a) => a.items)).toEqual([[1, 2], [5]]);
    expect([...answered]).toEqual([
      [1, null],
      [2, null],
      [3, 'disk on fire'],
      [4, 'disk on fire'],
      [5, null],
    ]);
    expect(errors).toEqual([{ err: expect.objectContaining({ message: 'disk on fire' }), count: 2 }]);
  });

  it('says full at highWater and tells drain listeners once it has committed', () => {
    const { queue } = recordingQueue({ maxBatch: 100, highWater: 3 });
    const drained = vi.fn();
    queue.onDrain(drained);
    queue.push(1, () => undefined);
    queue.push(2, () => undefined);
    expect(queue.full).toBe(false);
    queue.push(3, () => undefined);
    expect(queue.full).toBe(true);
    expect(queue.length).toBe(3);
    queue.flush();
    expect(queue.full).toBe(false);
    expect(drained).toHaveBeenCalledTimes(1);
  });

  it('commits on the next turn by itself, and refuses pushes once stopped (after committing what it held)', async () => {
    const { queue, commits } = recordingQueue();
    const answered: Array<string | null> = [];
    queue.push(1, (err) => answered.push(err ? err.message : null));
    await vi.waitUntil(() => commits.length === 1);
    expect(answered).toEqual([null]);
    queue.push(2, (err) => answered.push(err ? err.message : null));
    queue.stop();
    queue.push(3, (err) => answered.push(err ? err.message : null));
    expect(commits).toEqual([[1], [2]]);
    expect(answered).toEqual([null, null, 'ingest queue is stopped']);
  });
});
