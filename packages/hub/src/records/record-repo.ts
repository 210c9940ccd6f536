import type { MessageOf, TelemetryMessage } from '@edgefleet/shared';
import type { Db } from '../store/database.js';

/** One agent→hub record, decoded and validated. */
export type DeviceRecord =
  | { deviceId: string; kind: 'telemetry'; message: MessageOf<'telemetry'> }
  | { deviceId: string; kind: 'events'; message: MessageOf<'events'> }
  | { deviceId: string; kind: 'drift'; message: MessageOf<'drift'> }
  | { deviceId: string; kind: 'cmd/result'; message: MessageOf<'cmd/result'> };

export interface TelemetryPointRow {
  seq: number;
  ts: string;
  system: TelemetryMessage['system'];
  models: TelemetryMessage['models'];
}

/**
 * SQL for records. Each is keyed on (device, seq) and inserted with OR IGNORE, which makes replays
 * exactly-once. Telemetry keeps a bounded history per device; `telemetry_floor` remembers the
 * highest pruned seq so a late replay of a pruned record is not stored again.
 */
export function createRecordRepo(db: Db, historyPerDevice: number) {
  const insTelemetry = db.prepare(
    'INSERT OR IGNORE INTO telemetry (device_id, seq, ts, payload) SELECT @deviceId, @seq, @ts, @payload WHERE @seq > (SELECT telemetry_floor FROM devices WHERE id = @deviceId)',
  );
  const insEvent = db.prepare('INSERT OR IGNORE INTO events (device_id, seq, ts, type, payload) VALUES (?, ?, ?, ?, ?)');
  const insDrift = db.prepare('INSERT OR IGNORE INTO drift (device_id, seq, ts, model, payload) VALUES (?, ?, ?, ?, ?)');
  const insCmd = db.prepare('INSERT OR IGNORE INTO cmd_results (device_id, seq, ts, cmd_id, payload) VALUES (?, ?, ?, ?, ?)');
  const countTelemetry = db.prepare('SELECT count(*) FROM telemetry WHERE device_id = ?').pluck();
  const nthNewest = db.prepare('SELECT seq FROM telemetry WHERE device_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?').pluck();
  const pruneBelow = db.prepare('DELETE FROM telemetry WHERE device_id = ? AND seq <= ?');
  const setFloor = db.prepare('UPDATE devices SET telemetry_floor = max(telemetry_floor, ?) WHERE id = ?');
  const history = db.prepare('SELECT seq, ts, payload FROM (SELECT * FROM telemetry WHERE device_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq');
  const recentEvents = db.prepare('SELECT payload FROM events WHERE device_id = ? ORDER BY seq DESC LIMIT ?').pluck();

  function insertOne(r: DeviceRecord): boolean {
    const m = r.message;
    const payload = JSON.stringify(m);
    switch (r.kind) {
      case 'telemetry':
        return insTelemetry.run({ deviceId: r.deviceId, seq: m.seq, ts: Math.round(m.ts), payload }).changes === 1;
      case 'events':
        return insEvent.run(r.deviceId, m.seq, Math.round(m.ts), r.message.type, payload).changes === 1;
      case 'drift':
        return insDrift.run(r.deviceId, m.seq, Math.round(m.ts), r.message.model, payload).changes === 1;
      case 'cmd/result':
        return insCmd.run(r.deviceId, m.seq, Math.round(m.ts), r.message.id, payload).changes === 1;
    }
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
    const floor = nthNewest.get(deviceId, historyPerDevice) as number | undefined;
    if (floor === undefined) return;
    pruneBelow.run(deviceId, floor);
    setFloor.run(floor, deviceId);
  }

  return {
    /** Inserts a batch in one transaction; returns, per record, whether it was new. */
    insertBatch(records: readonly DeviceRecord[]): boolean[] {
      return db.transaction(() => {
        const fresh = records.map(insertOne);
        const added = new Map<string, number>();
        records.forEach((r, i) => {
          if (r.kind === 'telemetry' && fresh[i]) added.set(r.deviceId, (added.get(r.deviceId) ?? 0) + 1);
        });
        for (const [id, n] of added) prune(id, n);
        return fresh;
      })();
    },
    telemetryHistory(deviceId: string, limit: number): TelemetryPointRow[] {
      return (history.all(deviceId, limit) as Array<{ seq: number; ts: number; payload: string }>).map((row) => {
        const m = JSON.parse(row.payload) as TelemetryMessage;
        return { seq: row.seq, ts: new Date(row.ts).toISOString(), system: m.system, models: m.models };
      });
    },
    recentEvents(deviceId: string, limit: number): Array<MessageOf<'events'>> {
      return (recentEvents.all(deviceId, limit) as string[]).map((p) => JSON.parse(p) as MessageOf<'events'>);
    },
  };
}
export type RecordRepo = ReturnType<typeof createRecordRepo>;
