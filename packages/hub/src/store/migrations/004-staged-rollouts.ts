/**
 * 004: rollouts become a stored state machine at three levels. Rollouts gain their own state
 * (the single-wave 'in-progress' is now 'running', 'failed' is 'halted'), settings, the reason they
 * stopped and the maintenance window's end; waves get a table; device rows gain from/to, the
 * assignment they were given (the signed manifest of their variant), the times that drive deadlines
 * and the shadow report. Each distinct signed manifest of a rollout is stored once (rollout_manifests,
 * up to ~64 KB with inline golden data) and rows name theirs by sha256: at 10,000 devices a copy per
 * row would be hundreds of MB. Rows from before stay readable: one wave 0 of "100%", and `to` is read from
 * the rollout's model/version/sha256 while to_ref is NULL (the row reader falls back to it).
 * Times compared with the clock are integers (ms since epoch); text times stay ISO as before.
 */
const DEFAULT_SETTINGS = JSON.stringify({
  maxConcurrentDownloads: 100,
  deviceTimeoutSec: 900,
  autoRollback: false,
  maxDeferSec: 600,
  maintenanceWindow: null,
  shadow: null,
  healthWindow: null,
});

export const sql = `
ALTER TABLE rollouts ADD COLUMN settings TEXT NOT NULL DEFAULT '${DEFAULT_SETTINGS}';
ALTER TABLE rollouts ADD COLUMN reason TEXT;
ALTER TABLE rollouts ADD COLUMN window_open_until INTEGER;
ALTER TABLE rollouts ADD COLUMN updated_at TEXT;
UPDATE rollouts SET
  state = CASE state WHEN 'in-progress' THEN 'running' WHEN 'failed' THEN 'halted' ELSE state END,
  updated_at = created_at;
UPDATE rollouts SET reason = '{"wave":0,"gate":null,"message":"a device failed (before staged rollouts)","at":"' || created_at || '"}'
  WHERE state = 'halted';

CREATE TABLE rollout_waves (
  rollout_id TEXT NOT NULL REFERENCES rollouts(id),
  idx INTEGER NOT NULL,
  state TEXT NOT NULL,
  spec TEXT NOT NULL,
  started_at INTEGER,
  bake_until INTEGER,
  ended_at INTEGER,
  gates TEXT NOT NULL DEFAULT '[]',
  -- An operator resumed the wave past a failed gate: its gates are recorded but no longer halt it.
  override INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (rollout_id, idx)
);
INSERT INTO rollout_waves (rollout_id, idx, state, spec)
  SELECT id, 0, CASE state WHEN 'succeeded' THEN 'passed' WHEN 'halted' THEN 'halted' ELSE 'running' END, '{"size":"100%"}'
  FROM rollouts;

ALTER TABLE rollout_devices ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollout_devices ADD COLUMN from_ref TEXT;
ALTER TABLE rollout_devices ADD COLUMN to_ref TEXT;
-- Keys into rollout_manifests (rollout_id, sha256): the variant assigned and the version it ran before.
ALTER TABLE rollout_devices ADD COLUMN to_manifest_sha256 TEXT;
ALTER TABLE rollout_devices ADD COLUMN from_manifest_sha256 TEXT;
ALTER TABLE rollout_devices ADD COLUMN activate INTEGER NOT NULL DEFAULT 1;
ALTER TABLE rollout_devices ADD COLUMN assigned_at INTEGER;
ALTER TABLE rollout_devices ADD COLUMN deadline INTEGER;
ALTER TABLE rollout_devices ADD COLUMN switched_at INTEGER;
ALTER TABLE rollout_devices ADD COLUMN shadow TEXT;
-- Single-wave rows were assigned at creation; 'pending' meant "no word yet".
UPDATE rollout_devices SET state = 'assigned' WHERE state = 'pending';
UPDATE rollout_devices SET state = 'superseded' WHERE state = 'failed' AND error LIKE 'superseded by rollout %';

CREATE TABLE rollout_manifests (
  rollout_id TEXT NOT NULL REFERENCES rollouts(id),
  -- The artifact's sha256 (manifest.sha256): one signed manifest per artifact and rollout.
  sha256 TEXT NOT NULL,
  manifest TEXT NOT NULL,
  PRIMARY KEY (rollout_id, sha256)
);

-- Counts per wave (advance, every ingest batch) read the index alone; the waiting list comes out of
-- it in assignment order, and rows by state (deadlines, rollbacks) use its prefix.
CREATE INDEX rollout_devices_by_wave ON rollout_devices(rollout_id, wave, state);
CREATE INDEX rollout_devices_by_state ON rollout_devices(rollout_id, state, wave, position);
`;
