import type { Logger } from 'pino';

type WarnLogger = Pick<Logger, 'warn'>;

/** What the fan-out needs of a stream: an http.ServerResponse in the hub, any Node writable in tests. */
export interface SseStream {
  write(chunk: string): boolean;
  end(): unknown;
  destroy(err?: Error): unknown;
  readonly writableLength: number;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * A dashboard that stops reading must not grow the hub's memory without bound: past this many
 * unsent bytes its stream is closed (its EventSource reconnects and reloads the device list).
 */
const MAX_UNSENT_BYTES = 1024 * 1024;

/**
 * How often, at most, a stream's credentials are checked again (on the frames it is sent, heartbeats
 * included): a stream opened with a token that is later revoked, or a session later logged out, must
 * not keep receiving the fleet's events, and one SQLite lookup per stream per second is cheap.
 */
const REVALIDATE_MS = 1000;

export interface SseFanout {
  /** `stillAllowed` says whether the credentials the stream was opened with are still valid. */
  add(stream: SseStream, stillAllowed?: () => boolean): void;
  remove(stream: SseStream): void;
  /** Writes one frame to every open stream; a stream that fails or falls too far behind is dropped, the others still get it. */
  broadcast(frame: string): void;
  closeAll(): void;
  readonly size: number;
}

export function createSseFanout(log: WarnLogger, maxUnsentBytes = MAX_UNSENT_BYTES): SseFanout {
  /** Open streams, with their credential check and when it last passed. */
  const open = new Map<SseStream, { stillAllowed: () => boolean; checkedAt: number }>();

  /** Whether the stream may have the next frame: its credentials, checked at most every REVALIDATE_MS. */
  function allowed(stream: SseStream): boolean {
    const entry = open.get(stream);
    if (!entry) return false;
    const now = Date.now();
    if (now - entry.checkedAt < REVALIDATE_MS) return true;
    if (!entry.stillAllowed()) return false;
    entry.checkedAt = now;
    return true;
  }

  function drop(stream: SseStream, reason: string, err?: unknown): void {
    if (!open.delete(stream)) return;
    log.warn({ err, reason, streams: open.size }, 'dashboard event stream dropped');
    stream.destroy();
  }

  return {
    add(stream, stillAllowed = () => true) {
      open.set(stream, { stillAllowed, checkedAt: Date.now() });
      // Without an 'error' listener a write after the client went away would be an uncaught exception.
      stream.on('error', (err) => drop(stream, 'stream error', err));
      stream.once('close', () => open.delete(stream));
    },
    remove(stream) {
      open.delete(stream);
    },
    broadcast(frame) {
      for (const stream of [...open.keys()]) {
        let ok: boolean;
        try {
          ok = allowed(stream);
        } catch (err) {
          drop(stream, 'credential check failed', err);
          continue;
        }
        if (!ok) {
          drop(stream, 'its token was revoked or its session ended');
          continue;
        }
        try {
          stream.write(frame);
        } catch (err) {
          drop(stream, 'write failed', err);
          continue;
        }
        if (stream.writableLength > maxUnsentBytes) drop(stream, `client is ${stream.writableLength} bytes behind (limit ${maxUnsentBytes})`);
      }
    },
    closeAll() {
      for (const stream of open.keys()) stream.end();
      open.clear();
    },
    get size() {
      return open.size;
    },
  };
}
