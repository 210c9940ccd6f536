/**
 * Batches record writes off the broker's delivery path. Each item's `done` is called only after
 * the transaction holding it has committed (that is what makes a PUBACK mean "durable"). The queue
 * is bounded: past `highWater` it reports `full`, and the caller holds back its producers
 * until `onDrain` fires.
 */
export interface IngestQueueOptions<T, R> {
  /** Writes one batch in one transaction and says what became of it. Throws to fail the batch. */
  commit: (items: readonly T[]) => R;
  /** Called after commit with the batch and what `commit` returned (side effects: events, rollout progress). */
  afterCommit: (items: readonly T[], result: R) => void;
  onError: (err: unknown, count: number) => void;
  maxBatch?: number;
  highWater?: number;
  /**
   * How long the first queued item waits for company before the batch commits: 0 = the next turn
   * of the event loop. Each commit is an fsync; writes nobody waits on long can take a longer window.
   */
  delayMs?: number;
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

export function createIngestQueue<T, R>(opts: IngestQueueOptions<T, R>): IngestQueue<T> {
  const maxBatch = opts.maxBatch ?? 500;
  const highWater = opts.highWater ?? 10_000;
  let queue: Pending<T>[] = [];
  const delayMs = opts.delayMs ?? 0;
  let cancelScheduled: (() => void) | null = null;
  const drainListeners: Array<() => void> = [];
  let stopped = false;

  function flushBatch(batch: Pending<T>[]): void {
    let result: R;
    try {
      result = opts.commit(batch.map((p) => p.item));
    } catch (err) {
      opts.onError(err, batch.length);
      const failure = err instanceof Error ? err : new Error(String(err));
      for (const p of batch) p.done(failure);
      return;
    }
    for (const p of batch) p.done(null);
    try {
      opts.afterCommit(batch.map((p) => p.item), result);
    } catch (err) {
      opts.onError(err, 0);
    }
  }

  function schedule(): void {
    if (cancelScheduled) return;
    if (delayMs > 0) {
      const timer = setTimeout(flush, delayMs);
      cancelScheduled = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(flush);
      cancelScheduled = () => clearImmediate(immediate);
    }
  }

  function flushNow(): void {
    cancelScheduled?.();
    flush();
  }

  function flush(): void {
    cancelScheduled = null;
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
      if (queue.length >= maxBatch) flushNow();
      else schedule();
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
    flush: flushNow,
    stop() {
      if (stopped) return;
      flushNow();
      stopped = true;
    },
  };
}
