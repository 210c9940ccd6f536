import type { MessageOf, ModelStats, TelemetryMessage } from '@edgefleet/shared';
import type { Db } from '../store/database.js';
import { readTelemetryPoint, type TelemetryRow } from './telemetry-view.js';

type RecordKind = 'telemetry' | 'events' | 'drift' | 'cmd/result';

/** One agent→hub record, decoded, validated and already serialised (`payload`), so one record cannot fail a batch. */
export type DeviceRecord = { [K in RecordKind]: { deviceId: string; kind: K; message: MessageOf<K>; payload: string } }[RecordKind];

/**
 * What became of a record: `stored`; `duplicate` (its identity is already stored with the same time:
 * a store-and-forward replay, or below the telemetry floor); `conflict` (its identity is already
 * stored with a different time: the device reused a seq within an epoch, a seq regression).
 */
export type RecordOutcome = 'stored' | 'duplicate' | 'conflict';

/** A device whose records moved to another epoch (its agent database was replaced). */
export interface EpochChange {
  deviceId: string;
  from: string;
  to: string;
}

export interface BatchResult {
  outcomes: RecordOutcome[];
  epochChanges: EpochChange[];
}

export interface TelemetryPointRow {
  seq: number;
  ts: string;
  system: TelemetryMessage['system'];
  models: TelemetryMessage['models'];
}

const TABLES = { telemetry: 'telemetry', events: 'events', drift: 'drift', 'cmd/result': 'cmd_results' } as const;

/**
 * SQL for records. Each is keyed on (device, epoch, seq) and inserted with OR IGNORE, which makes
 * replays exactly-once; records of agents without an epoch use ''. Telemetry keeps a bounded history
 * per device (newest by arrival); `telemetry_floors` remembers the highest pruned seq per
 * (device, epoch) so a late replay of a pruned record is not stored again.
 */
export function createRecordRepo(db: Db, historyPerDevice: number) {
  const insTelemetry = db.prepare(
    `INSERT OR IGNORE INTO telemetry (device_id, epoch, seq, ts, payload) SELECT @deviceId, @epoch, @seq, @ts, @payload
     WHERE @seq > coalesce((SELECT floor FROM telemetry_floors WHERE device_id = @deviceId AND epoch = @epoch), -1)`,
  );
  const insEvent = db.prepare('INSERT OR IGNORE INTO events (device_id, epoch, seq, ts, type, payload) VALUES (?, ?, ?, ?, ?, ?)');
  const insDrift = db.prepare('INSERT OR IGNORE INTO drift (device_id, epoch, seq, ts, model, payload) VALUES (?, ?, ?, ?, ?, ?)');
  const insCmd = db.prepare('INSERT OR IGNORE INTO cmd_results (device_id, epoch, seq, ts, cmd_id, payload) VALUES (?, ?, ?, ?, ?, ?)');
  const storedTsOf = (table: string) => db.prepare<[string, string, number], number>(`SELECT ts FROM ${table} WHERE device_id = ? AND epoch = ? AND seq = ?`).pluck();
  const storedTs = {
    telemetry: storedTsOf(TABLES.telemetry),
    events: storedTsOf(TABLES.events),
    drift: storedTsOf(TABLES.drift),
    'cmd/result': storedTsOf(TABLES['cmd/result']),
  };
  const countTelemetry = db.prepare('SELECT count(*) FROM telemetry WHERE device_id = ?').pluck();
  const nthNewest = db.prepare('SELECT id FROM telemetry WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?').pluck();
  const raiseFloors = db.prepare(
    `INSERT INTO telemetry_floors (device_id, epoch, floor, floor_ts)
     SELECT device_id, epoch, max(seq), max(ts) FROM telemetry WHERE device_id = ? AND id <= ? GROUP BY epoch
     ON CONFLICT (device_id, epoch) DO UPDATE SET floor = max(floor, excluded.floor), floor_ts = max(floor_ts, excluded.floor_ts)`,
  );
  const pruneBelow = db.prepare('DELETE FROM telemetry WHERE device_id = ? AND id <= ?');
  const floorTs = db.prepare<[string, string, number], number>('SELECT floor_ts FROM telemetry_floors WHERE device_id = ? AND epoch = ? AND floor >= ?').pluck();
  const getEpoch = db.prepare('SELECT record_epoch FROM devices WHERE id = ?').pluck();
  const setEpoch = db.prepare('UPDATE devices SET record_epoch = ? WHERE id = ?');
  const history = db.prepare('SELECT seq, ts, payload FROM (SELECT id, seq, ts, payload FROM telemetry WHERE device_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id');
  const recentEvents = db.prepare('SELECT payload FROM events WHERE device_id = ? ORDER BY id DESC LIMIT ?').pluck();
  // By the device's own time, not arrival: a store-and-forward replay belongs where it was made.
  const between = db.prepare(
    `SELECT seq, ts, payload FROM (SELECT id, seq, ts, payload FROM telemetry WHERE device_id = ? AND ts >= ? AND ts <= ? ORDER BY ts DESC, id DESC LIMIT ?)
     ORDER BY ts, id`,
  );

  function insertOne(r: DeviceRecord): boolean {
    const m = r.message;
    const epoch = m.epoch ?? '';
    const ts = Math.round(m.ts);
    switch (r.kind) {
      case 'telemetry':
        return insTelemetry.run({ deviceId: r.deviceId, epoch, seq: m.seq, ts, payload: r.payload }).changes === 1;
      case 'events':
        return insEvent.run(r.deviceId, epoch, m.seq, ts, r.message.type, r.payload).changes === 1;
      case 'drift':
        return insDrift.run(r.deviceId, epoch, m.seq, ts, r.message.model, r.payload).changes === 1;
      case 'cmd/result':
        return insCmd.run(r.deviceId, epoch, m.seq, ts, r.message.id, r.payload).changes === 1;
    }
  }

  function outcomeOf(r: DeviceRecord): RecordOutcome {
    if (insertOne(r)) return 'stored';
    const epoch = r.message.epoch ?? '';
    const ts = Math.round(r.message.ts);
    const stored = storedTs[r.kind].get(r.deviceId, epoch, r.message.seq);
    if (stored !== undefined) return stored === ts ? 'duplicate' : 'conflict';
    // Below the telemetry floor: a replay of a pruned record was made before the newest pruned one.
    const newestPruned = r.kind === 'telemetry' ? floorTs.get(r.deviceId, epoch, r.message.seq) : undefined;
    return newestPruned !== undefined && ts > newestPruned ? 'conflict' : 'duplicate';
  }

  /** Each device's epoch as last committed; loaded from the devices table on first sight. */
  const knownEpochs = new Map<string, string | null>();
  function knownEpoch(deviceId: string): string | null {
    if (!knownEpochs.has(deviceId)) knownEpochs.set(deviceId, (getEpoch.get(deviceId) as string | null | undefined) ?? null);
    return knownEpochs.get(deviceId)!;
  }

  /** Moves devices to the epoch of their new records; returns the changes (a first epoch is not one). */
  function trackEpochs(records: readonly DeviceRecord[], outcomes: readonly RecordOutcome[], seen: Map<string, string>): EpochChange[] {
    const changes: EpochChange[] = [];
    records.forEach((r, i) => {
      if (outcomes[i] !== 'stored') return;
      const epoch = r.message.epoch ?? '';
      const before = seen.get(r.deviceId) ?? knownEpoch(r.deviceId);
      if (before === epoch) return;
      if (before !== null) changes.push({ deviceId: r.deviceId, from: before, to: epoch });
      setEpoch.run(epoch, r.deviceId);
      seen.set(r.deviceId, epoch);
    });
    return changes;
  }

  // Counting a device's rows is a range scan, so it runs once per `slack` new rows of that device
  // (and on its first record after start), not on every batch: history stays within bound + 2·slack.
  const slack = Math.max(10, Math.ceil(historyPerDevice / 10));
  const addedSinceCheck = new Map<string, number>();

  /** Drops the oldest telemetry of a device past the history bound, in batches of about `slack`. */
  function prune(deviceId: string, added: number): void {
    const pending = (addedSinceCheck.get(deviceId) ?? slack) + added;
    if (pending < slack) {
      addedSinceCheck.set(deviceId, pending);
      return;
    }
    addedSinceCheck.set(deviceId, 0);
    if ((countTelemetry.get(deviceId) as number) <= historyPerDevice + slack) return;
    const newestPruned = nthNewest.get(deviceId, historyPerDevice) as number | undefined;
    if (newestPruned === undefined) return;
    raiseFloors.run(deviceId, newestPruned);
    pruneBelow.run(deviceId, newestPruned);
  }

  return {
    /** Inserts a batch in one transaction; returns, per record, what became of it, and the epoch changes it made. */
    insertBatch(records: readonly DeviceRecord[]): BatchResult {
      const seen = new Map<string, string>();
      const result = db.transaction((): BatchResult => {
        const outcomes = records.map(outcomeOf);
        const epochChanges = trackEpochs(records, outcomes, seen);
        const added = new Map<string, number>();
        records.forEach((r, i) => {
          if (r.kind === 'telemetry' && outcomes[i] === 'stored') added.set(r.deviceId, (added.get(r.deviceId) ?? 0) + 1);
        });
        for (const [id, n] of added) prune(id, n);
        return { outcomes, epochChanges };
      })();
      // Only a committed epoch becomes the known one: a failed batch leaves the cache as it was.
      for (const [id, epoch] of seen) knownEpochs.set(id, epoch);
      return result;
    },
    telemetryHistory(deviceId: string, limit: number): TelemetryPointRow[] {
      // A stored row that cannot be shown (see telemetry-view.ts) is left out of the history, not a 500 for it.
      return (history.all(deviceId, limit) as TelemetryRow[]).flatMap((row) => {
        const read = readTelemetryPoint(row);
        return 'point' in read ? [read.point] : [];
      });
    },
    /** A device's telemetry made between two times (ms, inclusive), oldest first; the newest `limit` when there are more. */
    telemetryBetween(deviceId: string, fromTs: number, toTs: number, limit = 500): Array<{ ts: number; models: ModelStats[] }> {
      return (between.all(deviceId, Math.floor(fromTs), Math.ceil(toTs), limit) as TelemetryRow[]).flatMap((row) => {
        const read = readTelemetryPoint(row);
        return 'point' in read ? [{ ts: row.ts, models: read.point.models }] : [];
      });
    },
    recentEvents(deviceId: string, limit: number): Array<MessageOf<'events'>> {
      return (recentEvents.all(deviceId, limit) as string[]).map((p) => JSON.parse(p) as MessageOf<'events'>);
    },
  };
}
export type RecordRepo = ReturnType<typeof createRecordRepo>;
