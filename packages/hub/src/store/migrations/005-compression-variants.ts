/**
 * 005: compression variants. A model version gets an accuracy budget, an optional calibration set
 * (stored as an artifact), its latest variant build (with progress), and its variants — fp32 among
 * them, so planning and rollouts treat every profile alike. Plans say which variant each device gets
 * for a version and why; device benchmarks are what devices measured; benchmark requests let a device
 * download the candidates it was asked to measure until they expire.
 */
export const sql = `
ALTER TABLE model_versions ADD COLUMN budget TEXT;

CREATE TABLE model_calibrations (
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  summary TEXT NOT NULL,
  uploaded_at TEXT NOT NULL,
  PRIMARY KEY (model, version),
  FOREIGN KEY (model, version) REFERENCES model_versions(model, version)
);

CREATE TABLE variant_builds (
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  state TEXT NOT NULL,
  request TEXT NOT NULL,
  progress TEXT NOT NULL,
  error TEXT,
  created_at TEXT NOT NULL,
  started_at TEXT,
  ended_at TEXT,
  PRIMARY KEY (model, version),
  FOREIGN KEY (model, version) REFERENCES model_versions(model, version)
);

CREATE TABLE model_variants (
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  profile TEXT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT,
  sha256 TEXT,
  size INTEGER,
  transfer TEXT,
  evaluation TEXT,
  manifest TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (model, version, profile),
  FOREIGN KEY (model, version) REFERENCES model_versions(model, version)
);
CREATE INDEX model_variants_by_sha ON model_variants(sha256);
INSERT INTO model_variants (model, version, profile, state, reason, sha256, size, transfer, evaluation, manifest, created_at, updated_at)
  SELECT model, version, 'fp32', 'accepted', NULL, sha256, size, json_extract(manifest, '$.manifest.transfer'), NULL, manifest, created_at, created_at
  FROM model_versions;

CREATE TABLE device_plans (
  device_id TEXT NOT NULL REFERENCES devices(id),
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  profile TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  decided_by TEXT NOT NULL,
  plan TEXT NOT NULL,
  planned_at TEXT NOT NULL,
  PRIMARY KEY (device_id, model, version)
);
CREATE INDEX device_plans_by_version ON device_plans(model, version);

CREATE TABLE device_benchmarks (
  device_id TEXT NOT NULL REFERENCES devices(id),
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  profile TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  p50_ms REAL,
  p90_ms REAL,
  runs INTEGER NOT NULL,
  error TEXT,
  measured_at TEXT NOT NULL,
  PRIMARY KEY (device_id, sha256)
);
CREATE INDEX device_benchmarks_by_version ON device_benchmarks(model, version);

CREATE TABLE benchmark_requests (
  id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL REFERENCES devices(id),
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  artifacts TEXT NOT NULL,
  state TEXT NOT NULL,
  error TEXT,
  requested_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX benchmark_requests_by_device ON benchmark_requests(device_id, expires_at);
`;
