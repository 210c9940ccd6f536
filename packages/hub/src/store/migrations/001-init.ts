/** 001: devices, enrollment, operator auth, records, models, rollouts, desired state. */
export const sql = `
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE enrollment_tokens (
  token_sha256 TEXT PRIMARY KEY,
  labels TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at TEXT,
  used_by TEXT
);

CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}',
  secret_sha256 TEXT NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0,
  enrolled_at TEXT NOT NULL,
  last_seen TEXT,
  online INTEGER NOT NULL DEFAULT 0,
  capabilities TEXT,
  models TEXT NOT NULL DEFAULT '[]',
  desired_version INTEGER NOT NULL DEFAULT 0,
  reported_version INTEGER NOT NULL DEFAULT 0,
  telemetry_floor INTEGER NOT NULL DEFAULT -1
);

CREATE TABLE sessions (
  id_sha256 TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);

CREATE TABLE telemetry (
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  payload TEXT NOT NULL,
  UNIQUE (device_id, seq)
);

CREATE TABLE events (
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  UNIQUE (device_id, seq)
);

CREATE TABLE drift (
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  model TEXT NOT NULL,
  payload TEXT NOT NULL,
  UNIQUE (device_id, seq)
);

CREATE TABLE cmd_results (
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  cmd_id TEXT NOT NULL,
  payload TEXT NOT NULL,
  UNIQUE (device_id, seq)
);

CREATE TABLE models (
  name TEXT PRIMARY KEY,
  created_at TEXT NOT NULL
);

CREATE TABLE model_versions (
  model TEXT NOT NULL REFERENCES models(name),
  version TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  inputs TEXT NOT NULL,
  outputs TEXT NOT NULL,
  manifest TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (model, version)
);

CREATE TABLE rollouts (
  id TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  target TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at TEXT NOT NULL,
  FOREIGN KEY (model, version) REFERENCES model_versions(model, version)
);

CREATE TABLE rollout_devices (
  rollout_id TEXT NOT NULL REFERENCES rollouts(id),
  device_id TEXT NOT NULL REFERENCES devices(id),
  wave INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  progress REAL,
  error TEXT,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX rollout_devices_by_device ON rollout_devices(device_id);

CREATE TABLE desired (
  device_id TEXT PRIMARY KEY REFERENCES devices(id),
  version INTEGER NOT NULL,
  payload TEXT NOT NULL
);
`;
