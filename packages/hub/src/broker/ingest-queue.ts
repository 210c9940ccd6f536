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

type Done = (err: Error | null) => void;

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
  // Items and their callbacks in two parallel arrays, never wrapped in a per-item object literal.
  // Every queue built here shares this code, hence V8's allocation sites: the state writer's entries
  // wait up to STATE_FLUSH_MS in batches of thousands, so V8 learnt to allocate such a wrapper straight
  // in old space (pretenuring), and then every record's wrapper was too. A dead wrapper in old space
  // still keeps its record, payload and MQTT packet alive through each young-generation GC, so every
  // record was promoted: at 10,000 devices the old generation grew ~8 MB/s instead of ~1, and RSS with it.
  let items: T[] = [];
  let dones: Done[] = [];
  const delayMs = opts.delayMs ?? 0;
  let cancelScheduled: (() => void) | null = null;
  const drainListeners: Array<() => void> = [];
  let stopped = false;

  function flushBatch(batch: T[], callbacks: Done[]): void {
    let result: R;
    try {
      result = opts.commit(batch);
    } catch (err) {
      opts.onError(err, batch.length);
      const failure = err instanceof Error ? err : new Error(String(err));
      for (const done of callbacks) done(failure);
      return;
    }
    for (const done of callbacks) done(null);
    try {
      opts.afterCommit(batch, result);
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
    while (items.length > 0) {
      // Copies (slice), not the live arrays: a callback may push the next record while this batch runs.
      const batch = items.slice(0, maxBatch);
      const callbacks = dones.slice(0, batch.length);
      items = items.slice(batch.length);
      dones = dones.slice(batch.length);
      flushBatch(batch, callbacks);
    }
    for (const l of drainListeners) l();
  }

  return {
    push(item, done) {
      if (stopped) return done(new Error('ingest queue is stopped'));
      items.push(item);
      dones.push(done);
      if (items.length >= maxBatch) flushNow();
      else schedule();
    },
    get length() {
      return items.length;
    },
    get full() {
      return items.length >= highWater;
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
