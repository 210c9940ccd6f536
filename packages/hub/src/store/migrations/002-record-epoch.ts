/**
 * 002: record identity is (device, epoch, seq). The agent's database has a random epoch, so a lost
 * or restored agent database starts a new epoch instead of replaying seqs the hub already holds.
 * SQLite cannot change a UNIQUE constraint in place: each record table is rebuilt, existing rows
 * get the empty epoch (what agents without an epoch send). Rows get an explicit `id` so that
 * "latest" means arrival order, which stays meaningful across epochs where seq does not.
 * The telemetry floor (highest pruned seq) moves to its own table, one per (device, epoch), with
 * the newest pruned time: a record below the floor made after it is a seq regression, not a replay.
 */
const rebuild = (table: string, extra: string, extraCols: string) => `
CREATE TABLE ${table}_002 (
  id INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  epoch TEXT NOT NULL DEFAULT '',
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  ${extra}
  payload TEXT NOT NULL,
  UNIQUE (device_id, epoch, seq)
);
INSERT INTO ${table}_002 (device_id, epoch, seq, ts, ${extraCols} payload)
  SELECT device_id, '', seq, ts, ${extraCols} payload FROM ${table} ORDER BY device_id, seq;
DROP TABLE ${table};
ALTER TABLE ${table}_002 RENAME TO ${table};
CREATE INDEX ${table}_by_device ON ${table}(device_id);
`;

export const sql = `
${rebuild('telemetry', '', '')}
${rebuild('events', 'type TEXT NOT NULL,', 'type,')}
${rebuild('drift', 'model TEXT NOT NULL,', 'model,')}
${rebuild('cmd_results', 'cmd_id TEXT NOT NULL,', 'cmd_id,')}

CREATE TABLE telemetry_floors (
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  epoch TEXT NOT NULL,
  floor INTEGER NOT NULL,
  floor_ts INTEGER NOT NULL,
  PRIMARY KEY (device_id, epoch)
);
-- The pruned rows' times are gone: the oldest kept row's time bounds them from above.
INSERT INTO telemetry_floors (device_id, epoch, floor, floor_ts)
  SELECT id, '', telemetry_floor, coalesce((SELECT min(ts) FROM telemetry t WHERE t.device_id = devices.id), 253402300799999)
  FROM devices WHERE telemetry_floor >= 0;
ALTER TABLE devices DROP COLUMN telemetry_floor;

-- The epoch of the last new record from each device (NULL before its first), to notice a new one.
ALTER TABLE devices ADD COLUMN record_epoch TEXT;
`;
