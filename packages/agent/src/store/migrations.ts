/**
 * Numbered schema migrations, applied forward only. They live as strings (not .sql files) so `tsc`
 * ships them in dist/ without a copy step; each entry is still one plain SQL script.
 */
export const MIGRATIONS: ReadonlyArray<{ id: number; name: string; sql: string }> = [
  {
    id: 1,
    name: 'initial',
    sql: `
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
      );
      INSERT INTO meta (key, value) VALUES ('seq_reserved', 0), ('desired_version', 0);

      CREATE TABLE models (
        name         TEXT NOT NULL,
        version      TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        profile      TEXT NOT NULL,
        path         TEXT NOT NULL,
        manifest     TEXT NOT NULL,
        active       INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
        installed_at INTEGER NOT NULL,
        PRIMARY KEY (name, version)
      );
      CREATE UNIQUE INDEX models_one_active ON models (name) WHERE active = 1;

      CREATE TABLE failures (
        name            TEXT NOT NULL,
        sha256          TEXT NOT NULL,
        version         TEXT NOT NULL,
        desired_version INTEGER NOT NULL,
        code            TEXT NOT NULL,
        message         TEXT NOT NULL,
        retryable       INTEGER NOT NULL CHECK (retryable IN (0, 1)),
        attempts        INTEGER NOT NULL DEFAULT 1,
        failed_at       INTEGER NOT NULL,
        PRIMARY KEY (name, sha256)
      );
    `,
  },
  {
    id: 2,
    name: 'epoch-and-outbox',
    // The epoch comes from SQLite's randomblob (ChaCha20 seeded from the OS) so this stays a plain
    // SQL script; it runs once per database file, so a lost or replaced agent.db gets a new epoch.
    sql: `
      CREATE TABLE identity (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
      INSERT INTO identity (key, value) VALUES ('epoch', lower(hex(randomblob(16))));
      INSERT INTO meta (key, value) VALUES ('outbox_evicted', 0);

      CREATE TABLE outbox (
        seq        INTEGER PRIMARY KEY,
        epoch      TEXT NOT NULL,
        topic      TEXT NOT NULL,
        payload    BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        size       INTEGER NOT NULL
      );
      CREATE INDEX outbox_created_at ON outbox (created_at);
    `,
  },
  {
    id: 3,
    name: 'failure-rollout-id',
    // NULL for failures recorded before (and for assignments outside a rollout): those keep being
    // blocked under their desired version only.
    sql: `
      ALTER TABLE failures ADD COLUMN rollout_id TEXT;
    `,
  },
];
