import type Database from 'better-sqlite3';
import { Compile } from 'typebox/compile';
import { EdgefleetError, Manifest } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { openAgentDatabase } from './open-database.js';
import { createRecordOutbox, OUTBOX_LIMITS, type OutboxLimits, type RecordOutbox } from './outbox-store.js';
import { createSeqCounter } from './seq-counter.js';
import { checkSeqMark, writeSeqMark } from './seq-mark.js';

export interface InstalledModelRow {
  name: string;
  version: string;
  sha256: string;
  profile: string;
  path: string;
  manifest: Manifest;
  active: boolean;
  installedAt: number;
}

export interface FailureRow {
  name: string;
  sha256: string;
  version: string;
  desiredVersion: number;
  /** The rollout of the assignment that failed (absent: an assignment outside a rollout, or a row from before rollout ids were kept). */
  rolloutId?: string;
  code: string;
  message: string;
  retryable: boolean;
  attempts: number;
  failedAt: number;
}

export interface AgentStore {
  start(): void;
  stop(): void;
  /** The random identity of this database file, made with it; records carry it beside their seq. */
  epoch(): string;
  /** True when agent.db was made at this start (it was missing, empty or corrupt): no state survived. */
  isFresh(): boolean;
  /** Records waiting for the hub's acknowledgement, on disk. */
  outbox(): RecordOutbox;
  desiredVersion(): number;
  setDesiredVersion(version: number): void;
  listModels(): InstalledModelRow[];
  /** Records a verified file as installed (inactive); replaces an earlier row of the same version. */
  putModel(row: Omit<InstalledModelRow, 'active' | 'installedAt'>): void;
  /** Makes name@version the only active version of its name. */
  setActive(name: string, version: string): void;
  setInactive(name: string): void;
  deleteModel(name: string, version: string): void;
  listFailures(): FailureRow[];
  recordFailure(failure: Omit<FailureRow, 'attempts' | 'failedAt'>): FailureRow;
  clearFailure(name: string, sha256: string): void;
}

const manifestCheck = Compile(Manifest);

interface ModelDbRow {
  name: string;
  version: string;
  sha256: string;
  profile: string;
  path: string;
  manifest: string;
  active: number;
  installed_at: number;
}

function toModelRow(r: ModelDbRow): InstalledModelRow {
  const manifest: unknown = JSON.parse(r.manifest);
  if (!manifestCheck.Check(manifest)) {
    throw new EdgefleetError('INTERNAL', `agent.db row ${r.name}@${r.version} holds a manifest that does not match its schema`);
  }
  return {
    name: r.name,
    version: r.version,
    sha256: r.sha256,
    profile: r.profile,
    path: r.path,
    manifest,
    active: r.active === 1,
    installedAt: r.installed_at,
  };
}

export function createAgentStore(opts: { path: string; logger: Logger; now?: () => number; outbox?: Partial<OutboxLimits> }): AgentStore {
  const log = opts.logger.child({ module: 'store' });
  const now = opts.now ?? Date.now;
  let db: Database.Database | undefined;
  let opened: { fresh: boolean; epoch: string; outbox: RecordOutbox } | undefined;

  function open(): Database.Database {
    if (!db) throw new EdgefleetError('UNAVAILABLE', 'agent store is not started');
    return db;
  }

  function state(): NonNullable<typeof opened> {
    if (!opened) throw new EdgefleetError('UNAVAILABLE', 'agent store is not started');
    return opened;
  }

  function metaGet(key: string): number {
    return open().prepare('SELECT value FROM meta WHERE key = ?').pluck().get(key) as number;
  }

  function metaSet(key: string, value: number): void {
    open().prepare('UPDATE meta SET value = ? WHERE key = ?').run(value, key);
  }

  function listFailures(): FailureRow[] {
    const rows = open().prepare('SELECT * FROM failures ORDER BY failed_at').all() as Array<Record<string, unknown>>;
    return rows.map((r) => ({
      name: String(r.name),
      sha256: String(r.sha256),
      version: String(r.version),
      desiredVersion: Number(r.desired_version),
      ...(typeof r.rollout_id === 'string' ? { rolloutId: r.rollout_id } : {}),
      code: String(r.code),
      message: String(r.message),
      retryable: r.retryable === 1,
      attempts: Number(r.attempts),
      failedAt: Number(r.failed_at),
    }));
  }

  return {
    start() {
      if (db) return;
      const { db: d, fresh } = openAgentDatabase(opts.path, log, now);
      db = d;
      const epoch = checkSeqMark(d, opts.path, log);
      const counter = createSeqCounter(d, (reserved) => writeSeqMark(opts.path, { epoch, reserved }, log));
      const outbox = createRecordOutbox({
        db: d,
        path: opts.path,
        epoch,
        counter,
        limits: { ...OUTBOX_LIMITS, ...opts.outbox },
        logger: opts.logger,
        now,
      });
      opened = { fresh, epoch, outbox };
      log.info({ path: opts.path, epoch, fresh, outbox: outbox.stats() }, 'store opened');
    },

    stop() {
      if (!db) return;
      db.close();
      db = undefined;
      opened = undefined;
    },

    epoch: () => state().epoch,
    isFresh: () => state().fresh,
    outbox: () => state().outbox,

    desiredVersion: () => metaGet('desired_version'),
    setDesiredVersion: (version) => metaSet('desired_version', version),

    listModels() {
      const rows = open().prepare('SELECT * FROM models ORDER BY name, installed_at').all() as ModelDbRow[];
      return rows.map(toModelRow);
    },

    putModel(row) {
      open()
        .prepare(
          `INSERT INTO models (name, version, sha256, profile, path, manifest, active, installed_at)
           VALUES (@name, @version, @sha256, @profile, @path, @manifest, 0, @installedAt)
           ON CONFLICT (name, version) DO UPDATE SET sha256 = excluded.sha256, profile = excluded.profile,
             path = excluded.path, manifest = excluded.manifest, installed_at = excluded.installed_at`,
        )
        .run({ ...row, manifest: JSON.stringify(row.manifest), installedAt: now() });
    },

    setActive(name, version) {
      const d = open();
      d.transaction(() => {
        d.prepare('UPDATE models SET active = 0 WHERE name = ? AND active = 1').run(name);
        const res = d.prepare('UPDATE models SET active = 1 WHERE name = ? AND version = ?').run(name, version);
        if (res.changes !== 1) throw new EdgefleetError('NOT_FOUND', `cannot activate ${name}@${version}: it is not installed`);
      })();
    },

    setInactive(name) {
      open().prepare('UPDATE models SET active = 0 WHERE name = ?').run(name);
    },

    deleteModel(name, version) {
      open().prepare('DELETE FROM models WHERE name = ? AND version = ?').run(name, version);
    },

    listFailures,

    recordFailure(f) {
      const d = open();
      d.prepare(
        `INSERT INTO failures (name, sha256, version, desired_version, rollout_id, code, message, retryable, attempts, failed_at)
         VALUES (@name, @sha256, @version, @desiredVersion, @rolloutId, @code, @message, @retryable, 1, @failedAt)
         ON CONFLICT (name, sha256) DO UPDATE SET version = excluded.version, desired_version = excluded.desired_version,
           rollout_id = excluded.rollout_id, code = excluded.code, message = excluded.message, retryable = excluded.retryable,
           attempts = failures.attempts + 1, failed_at = excluded.failed_at`,
      ).run({ ...f, rolloutId: f.rolloutId ?? null, retryable: f.retryable ? 1 : 0, failedAt: now() });
      const row = listFailures().find((x) => x.name === f.name && x.sha256 === f.sha256);
      if (!row) throw new EdgefleetError('INTERNAL', `failure of ${f.name}@${f.version} was not recorded`);
      return row;
    },

    clearFailure(name, sha256) {
      open().prepare('DELETE FROM failures WHERE name = ? AND sha256 = ?').run(name, sha256);
    },
  };
}
