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
export const MAX_UNSENT_BYTES = 1024 * 1024;

export interface SseFanout {
  add(stream: SseStream): void;
  remove(stream: SseStream): void;
  /** Writes one frame to every open stream; a stream that fails or falls too far behind is dropped, the others still get it. */
  broadcast(frame: string): void;
  closeAll(): void;
  readonly size: number;
}

export function createSseFanout(log: WarnLogger, maxUnsentBytes = MAX_UNSENT_BYTES): SseFanout {
  const open = new Set<SseStream>();

  function drop(stream: SseStream, reason: string, err?: unknown): void {
    if (!open.delete(stream)) return;
    log.warn({ err, reason, streams: open.size }, 'dashboard event stream dropped');
    stream.destroy();
  }

  return {
    add(stream) {
      open.add(stream);
      // Without an 'error' listener a write after the client went away would be an uncaught exception.
      stream.on('error', (err) => drop(stream, 'stream error', err));
      stream.once('close', () => open.delete(stream));
    },
    remove(stream) {
      open.delete(stream);
    },
    broadcast(frame) {
      for (const stream of [...open]) {
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
      for (const stream of open) stream.end();
      open.clear();
    },
    get size() {
      return open.size;
    },
  };
}
