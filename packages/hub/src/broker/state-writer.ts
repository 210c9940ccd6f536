import type { MessageOf } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { DeviceRepo, StateWrite } from '../devices/device-repo.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import { createIngestQueue, type IngestQueue } from './ingest-queue.js';

/** Where a state write goes after its commit. */
interface StateEntry {
  write: StateWrite;
  /** Runs after the commit holding the write (bus event, the `reported` stream). */
  after?: () => void;
}

export interface StateWriter {
  /** Records presence; the bus hears `online`/`offline` once it is committed. */
  presence(deviceId: string, online: boolean): void;
  /** Stores a device's reported state; `done` (the PUBACK) and `after` wait for the commit. */
  reported(deviceId: string, reported: MessageOf<'reported'>, done: (err: Error | null) => void, after: () => void): void;
  /** Updates last-seen (a status message); `done` waits for the commit. */
  seen(deviceId: string, done: (err: Error | null) => void): void;
  readonly queue: IngestQueue<StateEntry>;
  stop(): void;
}

/** Longest a presence or `reported` write waits for others to share its commit. */
export const STATE_FLUSH_MS = 25;

/**
 * Device state written from the broker's delivery path (presence, `reported`, last-seen), queued
 * and committed many per transaction, like records: in a reconnect storm every CONNECT would
 * otherwise be its own transaction (an fsync each) on the event loop. The in-memory presence map
 * of the ingest service stays the source for immediate decisions; the database follows within
 * STATE_FLUSH_MS.
 */
export function createStateWriter(deps: { devices: DeviceRepo; bus: HubEventBus; log: Logger; onError: (err: unknown, count: number) => void }): StateWriter {
  const { devices, bus, log } = deps;
  const queue = createIngestQueue<StateEntry, void>({
    commit: (items) => devices.applyStateWrites(items.map((e) => e.write)),
    afterCommit(items) {
      let online = 0;
      let offline = 0;
      for (const e of items) {
        if (e.write.kind === 'presence') {
          if (e.write.online) online++;
          else offline++;
          bus.emit('device', { deviceId: e.write.deviceId, change: e.write.online ? 'online' : 'offline' });
          log.debug({ deviceId: e.write.deviceId }, e.write.online ? 'device online' : 'device offline');
        }
        e.after?.();
      }
      if (online + offline > 0) log.info({ online, offline }, 'device presence committed');
    },
    onError: deps.onError,
    // A storm queues one write per CONNECT: commit them in large transactions rather than every 500,
    // and at most every STATE_FLUSH_MS, since each commit is an fsync that stalls the event loop.
    maxBatch: 5_000,
    highWater: Number.MAX_SAFE_INTEGER,
    delayMs: STATE_FLUSH_MS,
  });
  // A storm asks for the time 20,000 times in a few seconds: format it once per millisecond.
  let lastMs = 0;
  let lastIso = '';
  const now = () => {
    const ms = Date.now();
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = new Date(ms).toISOString();
    }
    return lastIso;
  };
  const ignore = () => undefined;
  let stopped = false;
  return {
    presence(deviceId, online) {
      // The broker closes its clients while stopping; the next start marks every device offline anyway.
      if (stopped) return;
      queue.push({ write: { kind: 'presence', deviceId, online, at: now() } }, (err) => {
        if (err) log.error({ deviceId, online, err: err.message }, 'presence not stored');
      });
    },
    reported(deviceId, reported, done, after) {
      queue.push({ write: { kind: 'reported', deviceId, reported, at: now() }, after }, done);
    },
    seen(deviceId, done) {
      queue.push({ write: { kind: 'seen', deviceId, at: now() }, after: ignore }, done);
    },
    queue,
    stop() {
      queue.stop();
      stopped = true;
    },
  };
}
