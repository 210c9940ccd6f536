/**
 * Batches record writes off the broker's delivery path. Each item's `done` is called only after
 * the transaction holding it has committed (that is what makes a PUBACK mean "durable"). The queue
 * is bounded: past `highWater` it reports `full`, and the caller holds back its producers
 * until `onDrain` fires.
 */
export interface IngestQueueOptions<T> {
  /** Writes one batch in one transaction; returns per item whether it was new. Throws to fail the batch. */
  commit: (items: readonly T[]) => boolean[];
  /** Called after commit for each new item (side effects: events, rollout progress). */
  afterCommit: (items: readonly T[], fresh: readonly boolean[]) => void;
  onError: (err: unknown, count: number) => void;
  maxBatch?: number;
  highWater?: number;
}

interface Pending<T> {
  item: T;
  done: (err: Error | null) => void;
}

export interface IngestQueue<T> {
  push(item: T, done: (err: Error | null) => void): void;
  readonly length: number;
  readonly full: boolean;
  onDrain(listener: () => void): void;
  /** Commits what is queued now. */
  flush(): void;
  stop(): void;
}

export function createIngestQueue<T>(opts: IngestQueueOptions<T>): IngestQueue<T> {
  const maxBatch = opts.maxBatch ?? 500;
  const highWater = opts.highWater ?? 10_000;
  let queue: Pending<T>[] = [];
  let scheduled: NodeJS.Immediate | null = null;
  const drainListeners: Array<() => void> = [];
  let stopped = false;

  function flushBatch(batch: Pending<T>[]): void {
    let fresh: boolean[];
    try {
      fresh = opts.commit(batch.map((p) => p.item));
    } catch (err) {
      opts.onError(err, batch.length);
      const failure = err instanceof Error ? err : new Error(String(err));
      for (const p of batch) p.done(failure);
      return;
    }
    for (const p of batch) p.done(null);
    try {
      opts.afterCommit(batch.map((p) => p.item), fresh);
    } catch (err) {
      opts.onError(err, 0);
    }
  }

  function flush(): void {
    scheduled = null;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      flushBatch(batch);
    }
    for (const l of drainListeners) l();
  }

  return {
    push(item, done) {
      if (stopped) return done(new Error('ingest queue is stopped'));
      queue.push({ item, done });
      if (queue.length >= maxBatch) flush();
      else scheduled ??= setImmediate(flush);
    },
    get length() {
      return queue.length;
    },
    get full() {
      return queue.length >= highWater;
    },
    onDrain(listener) {
      drainListeners.push(listener);
    },
    flush() {
      if (scheduled) clearImmediate(scheduled);
      flush();
    },
    stop() {
      if (stopped) return;
      if (scheduled) clearImmediate(scheduled);
      flush();
      stopped = true;
    },
  };
}
