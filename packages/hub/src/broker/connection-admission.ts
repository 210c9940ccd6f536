/**
 * Lets at most `limit` connections be in their CONNECT handshake with the broker at once; the rest
 * wait in order, their bytes buffered by the kernel. A reconnect storm delivers thousands of
 * sockets in one accept burst, and aedes then advances every handshake (authentication, session
 * setup, queued packets) in the same few turns of the event loop: the loop stalled for over half a
 * second while records and HTTP waited. A socket closed while waiting is skipped. A handshake that
 * has not settled after `slotMs` (a client that connects and says nothing) gives up its slot, so
 * idle sockets cannot hold the queue: they stay with aedes, whose connect timeout closes them.
 */
export interface ConnectionAdmission<S> {
  admit(socket: S): void;
  /** The socket's handshake ended (connected, refused or closed): the next one may start. Idempotent. */
  settle(socket: S): void;
  /** Sockets waiting for their turn. */
  readonly waiting: number;
  stop(): void;
}

export interface AdmissionOptions {
  limit: number;
  slotMs: number;
  now?: () => number;
}

export function createConnectionAdmission<S extends { destroyed: boolean; destroy(): void }>(opts: AdmissionOptions, handle: (socket: S) => void): ConnectionAdmission<S> {
  const now = opts.now ?? Date.now;
  /** In-flight handshakes by start time (insertion order = oldest first). */
  const inFlight = new Map<S, number>();
  let queue: S[] = [];
  let head = 0;
  let scheduled: NodeJS.Immediate | null = null;
  let sweeper: NodeJS.Timeout | null = null;

  function start(socket: S): void {
    inFlight.set(socket, now());
    handle(socket);
  }

  function drain(): void {
    scheduled = null;
    const stale = now() - opts.slotMs;
    for (const [socket, startedAt] of inFlight) {
      if (startedAt > stale) break;
      inFlight.delete(socket);
    }
    while (head < queue.length && inFlight.size < opts.limit) {
      const socket = queue[head++]!;
      if (!socket.destroyed) start(socket);
    }
    if (head === queue.length) {
      queue = [];
      head = 0;
    }
    watch();
  }

  /** While sockets wait, check for stale slots now and then; idle otherwise. */
  function watch(): void {
    const waiting = head < queue.length;
    if (waiting && !sweeper) {
      sweeper = setInterval(drain, opts.slotMs);
      sweeper.unref();
    } else if (!waiting && sweeper) {
      clearInterval(sweeper);
      sweeper = null;
    }
  }

  return {
    admit(socket) {
      if (inFlight.size < opts.limit && head === queue.length) start(socket);
      else queue.push(socket);
      watch();
    },
    settle(socket) {
      if (!inFlight.delete(socket)) return;
      // Started from the next turn, not from inside aedes' callback that settled this one.
      if (head < queue.length) scheduled ??= setImmediate(drain);
    },
    get waiting() {
      return queue.length - head;
    },
    stop() {
      if (scheduled) clearImmediate(scheduled);
      if (sweeper) clearInterval(sweeper);
      scheduled = null;
      sweeper = null;
      for (const socket of queue.slice(head)) socket.destroy();
      queue = [];
      head = 0;
      inFlight.clear();
    },
  };
}
