import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeviceRepo } from '../src/devices/device-repo.js';
import { createHubEventBus } from '../src/events/hub-event-bus.js';
import { createModelRepo } from '../src/models/model-repo.js';
import { createRecordRepo } from '../src/records/record-repo.js';
import { createDesiredRepo } from '../src/rollouts/desired-repo.js';
import { advanceRollout } from '../src/rollouts/rollout-machine.js';
import { createRolloutRepo } from '../src/rollouts/rollout-repo.js';
import { createRolloutService } from '../src/rollouts/rollout-service.js';
import { openDatabase } from '../src/store/database.js';
import { sql as m001 } from '../src/store/migrations/001-init.js';
import { sql as m002 } from '../src/store/migrations/002-record-epoch.js';
import { sql as m003 } from '../src/store/migrations/003-operator-auth.js';

/** A database as the hub before staged rollouts left it (migrations 001 to 003). */
function previousVersionDatabase(file: string): Database.Database {
  const old = new Database(file);
  old.exec('CREATE TABLE migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  for (const [id, name, sql] of [[1, '001-init', m001], [2, '002-record-epoch', m002], [3, '003-operator-auth', m003]] as const) {
    old.exec(sql);
    old.prepare('INSERT INTO migrations VALUES (?, ?, ?)').run(id, name, '2026-01-01');
  }
  return old;
}

describe('migration 004: single-wave rollouts become staged ones', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ef-hub-m004-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps old rollouts readable, with their states mapped and wave 0 of 100%', () => {
    const file = join(dir, 'hub.db');
    const old = previousVersionDatabase(file);
    for (const d of ['d1', 'd2']) old.prepare("INSERT INTO devices (id, name, secret_sha256, enrolled_at) VALUES (?, ?, 'x', '2026-01-01')").run(d, d);
    old.prepare("INSERT INTO models VALUES ('clf', '2026-01-01')").run();
    old.prepare("INSERT INTO model_versions VALUES ('clf', '1', 'aaa', 10, '[]', '[]', '{}', '2026-01-01')").run();
    const rollout = old.prepare("INSERT INTO rollouts (id, model, version, sha256, target, state, created_at) VALUES (?, 'clf', '1', 'aaa', '{\"all\":true}', ?, ?)");
    const row = old.prepare('INSERT INTO rollout_devices (rollout_id, device_id, state, error, updated_at) VALUES (?, ?, ?, ?, ?)');
    rollout.run('r-running', 'in-progress', '2026-01-01T00:00:00.000Z');
    row.run('r-running', 'd1', 'pending', null, '2026-01-01T00:00:00.000Z');
    row.run('r-running', 'd2', 'downloading', null, '2026-01-01T00:00:00.000Z');
    rollout.run('r-failed', 'failed', '2026-01-02T00:00:00.000Z');
    row.run('r-failed', 'd1', 'failed', 'superseded by rollout r-x', '2026-01-02T00:00:00.000Z');
    row.run('r-failed', 'd2', 'failed', 'GOLDEN_MISMATCH: differs', '2026-01-02T00:00:00.000Z');
    rollout.run('r-done', 'succeeded', '2026-01-03T00:00:00.000Z');
    row.run('r-done', 'd2', 'active', null, '2026-01-03T00:00:00.000Z');
    old.close();

    const db = openDatabase(file, pino({ level: 'silent' }), { allowEmpty: true });
    try {
      const repo = createRolloutRepo(db);
      const running = repo.get('r-running')!;
      expect(running).toMatchObject({ state: 'running', reason: null, settings: { maxConcurrentDownloads: 100, autoRollback: false }, counts: { assigned: 1, downloading: 1 } });
      expect(running.waves).toHaveLength(1);
      expect(running.waves[0]).toMatchObject({ index: 0, state: 'running', spec: { size: '100%' }, gates: [] });
      expect(running.waves[0]!.devices[0]).toMatchObject({ deviceId: 'd1', state: 'assigned', from: null, to: { model: 'clf', version: '1', sha256: 'aaa' } });

      const failed = repo.get('r-failed')!;
      expect(failed).toMatchObject({ state: 'halted', reason: { wave: 0, gate: null } });
      expect(failed.waves[0]!.devices.map((d) => d.state)).toEqual(['superseded', 'failed']);
      expect(repo.get('r-done')).toMatchObject({ state: 'succeeded', waves: [{ state: 'passed' }], counts: { active: 1 } });
      expect(repo.list(50).map((r) => r.id)).toEqual(['r-done', 'r-failed', 'r-running']);
      expect(repo.list(2).map((r) => [r.id, r.counts])).toEqual([['r-done', { active: 1 }], ['r-failed', { superseded: 1, failed: 1 }]]);

      // The machine takes a migrated rollout where it stood: devices in flight, nothing to judge yet.
      const rec = repo.record('r-running')!;
      const step = advanceRollout(rec.core, repo.waves('r-running'), repo.countsByWave('r-running', 1), Date.now(), () => []);
      expect(step).toMatchObject({ changed: false, openThrough: 0, rollout: { state: 'running' } });
    } finally {
      db.close();
    }
  });

  it('does not uninstall the model when an operator aborts a migrated rollout (its rows do not know where devices came from)', async () => {
    const file = join(dir, 'abort.db');
    const old = previousVersionDatabase(file);
    old.prepare("INSERT INTO devices (id, name, secret_sha256, enrolled_at) VALUES ('d1', 'd1', 'x', '2026-01-01')").run();
    old.prepare("INSERT INTO models VALUES ('clf', '2026-01-01')").run();
    old.prepare("INSERT INTO model_versions VALUES ('clf', '2', 'bbb', 10, '[]', '[]', '{}', '2026-01-01')").run();
    old.prepare("INSERT INTO rollouts (id, model, version, sha256, target, state, created_at) VALUES ('r-old', 'clf', '2', 'bbb', '{\"all\":true}', 'in-progress', '2026-01-01T00:00:00.000Z')").run();
    old.prepare("INSERT INTO rollout_devices (rollout_id, device_id, state, error, updated_at) VALUES ('r-old', 'd1', 'downloading', NULL, '2026-01-01T00:00:00.000Z')").run();
    // The device ran clf@1 before; the old single-wave rollout kept no record of that.
    const doc = { version: 7, models: [{ rolloutId: 'r-old', manifest: { manifest: { model: 'clf', version: '2', profile: 'fp32', sha256: 'bbb' } } }] };
    old.prepare('INSERT INTO desired (device_id, version, payload) VALUES (?, ?, ?)').run('d1', 7, JSON.stringify(doc));
    old.close();

    const db = openDatabase(file, pino({ level: 'silent' }), { allowEmpty: true });
    try {
      const log = pino({ level: 'silent' });
      const published: string[] = [];
      const service = createRolloutService({
        db,
        rollouts: createRolloutRepo(db),
        desired: createDesiredRepo(db),
        devices: createDeviceRepo(db),
        models: createModelRepo(db),
        records: createRecordRepo(db, 100),
        broker: { publish: async (topic) => void published.push(topic) },
        bus: createHubEventBus(log),
        log,
      });
      const r = await service.act('r-old', 'abort');
      expect(r.state).toBe('aborted');
      // Its `from` is unknown, not "none": the assignment stays rather than removing the model the device serves.
      expect(createDesiredRepo(db).get('d1')).toEqual(doc);
      expect(published).toEqual([]);
    } finally {
      db.close();
    }
  });
});
