import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceTopic, type HubHealth } from '@edgefleet/shared';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { connectDevice, enrollDevice, eventually, startTestHub, telemetryRecord, type TestHub } from './hub-harness.js';

/**
 * Overwrites the b-tree page header of every index on `table` with bytes no valid page has, as
 * a disk or a careless copy would. The WAL is checkpointed first so the file holds every page,
 * and a write to another table afterwards makes a running hub drop its page cache.
 */
function corruptIndexes(dbFile: string, table: string): void {
  const db = new Database(dbFile);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const roots = db.prepare("SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = ?").pluck().all(table) as number[];
    expect(roots.length).toBeGreaterThan(0);
    const fd = openSync(dbFile, 'r+');
    try {
      for (const root of roots) writeSync(fd, Buffer.alloc(12, 0xff), 0, 12, (root - 1) * pageSize);
    } finally {
      closeSync(fd);
    }
    db.prepare("INSERT OR REPLACE INTO settings (key, value) VALUES ('test-cache-buster', ?)").run(String(Date.now()));
  } finally {
    db.close();
  }
}

async function removeDatabase(dataDir: string, mode: 'missing' | 'empty'): Promise<void> {
  for (const suffix of ['-wal', '-shm']) await rm(join(dataDir, `hub.db${suffix}`), { force: true });
  if (mode === 'missing') await unlink(join(dataDir, 'hub.db'));
  else await truncate(join(dataDir, 'hub.db'), 0);
}

describe('storage integrity at start', () => {
  const dirs: string[] = [];
  let running: TestHub | null = null;
  afterEach(async () => {
    await running?.stop();
    running = null;
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  const newDataDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ef-hub-storage-'));
    dirs.push(dir);
    return dir;
  };
  /** A data dir an earlier hub used: database, signing key, admin token. */
  const usedDataDir = async () => {
    const dataDir = await newDataDir();
    const first = await startTestHub({ dataDir });
    await enrollDevice(first);
    await first.stop();
    return dataDir;
  };

  for (const mode of ['empty', 'missing'] as const) {
    it(`refuses ${mode === 'empty' ? 'an empty' : 'a missing'} hub.db beside an earlier hub's signing key, naming the file and the way out`, async () => {
      const dataDir = await usedDataDir();
      await removeDatabase(dataDir, mode);
      const dbFile = join(dataDir, 'hub.db');
      const failure = startTestHub({ dataDir });
      await expect(failure).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
      await expect(failure).rejects.toThrow(`hub database ${dbFile} ${mode === 'empty' ? 'is empty (0 bytes)' : 'is missing'}`);
      await expect(failure).rejects.toThrow(/signing-key\.pem.*EDGEFLEET_HUB_ALLOW_EMPTY_DB=1/);

      // The operator's explicit way out: a new, empty database on purpose.
      running = await startTestHub({ dataDir, config: { allowEmptyDatabase: true } });
      const list = await running.api<{ devices: unknown[] }>('GET', '/api/v1/devices');
      expect(list.body.devices).toEqual([]);
    });
  }

  it('refuses an empty hub.db beside artifacts alone, and a file with no hub tables', async () => {
    const dataDir = await newDataDir();
    await writeFile(join(dataDir, 'hub.db'), '');
    await mkdir(join(dataDir, 'artifacts'));
    await writeFile(join(dataDir, 'artifacts', 'a'.repeat(64)), 'model bytes');
    await expect(startTestHub({ dataDir })).rejects.toThrow(/is empty \(0 bytes\).*1 artifact file\(s\) in artifacts\//);

    const bare = new Database(join(dataDir, 'hub.db'));
    bare.exec('CREATE TABLE unrelated (x)');
    bare.close();
    await expect(startTestHub({ dataDir })).rejects.toThrow(`hub database ${join(dataDir, 'hub.db')} holds no hub tables`);
  });

  it('starts on a fresh data dir and on its own database again', async () => {
    const dataDir = await usedDataDir();
    running = await startTestHub({ dataDir });
    expect((await running.api<{ devices: unknown[] }>('GET', '/api/v1/devices')).body.devices).toHaveLength(1);
    expect(running.logs.some((l) => l.msg === 'database quick_check ok')).toBe(true);
  });

  it('refuses a file that is not a database, naming it', async () => {
    const dataDir = await usedDataDir();
    await removeDatabase(dataDir, 'empty');
    await writeFile(join(dataDir, 'hub.db'), Buffer.alloc(8192, 0x5a));
    const failure = startTestHub({ dataDir });
    await expect(failure).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
    await expect(failure).rejects.toThrow(`hub database ${join(dataDir, 'hub.db')} cannot be opened: file is not a database`);
  });
});

describe('storage errors while running', () => {
  let t: TestHub | null = null;
  afterEach(async () => {
    await t?.stop();
    t = null;
  });

  it('health says degraded with the storage error while ingest fails, and the damaged file is refused at the next start', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ef-hub-corrupt-'));
    try {
      t = await startTestHub({ dataDir });
      const hub = t;
      const dev = await enrollDevice(hub);
      const client = await connectDevice(hub, dev);
      await client.publishAsync(deviceTopic(dev.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(1)), { qos: 1 });
      const healthy = await hub.api<HubHealth>('GET', '/api/v1/health');
      expect(healthy.body).toMatchObject({ status: 'ok', storage: { errorsSinceSuccess: 0, lastError: null } });

      corruptIndexes(join(dataDir, 'hub.db'), 'telemetry');
      // The batch holding this record fails; the broker refuses it and closes the connection.
      client.on('error', () => undefined);
      client.publish(deviceTopic(dev.deviceId, 'telemetry'), JSON.stringify(telemetryRecord(2)), { qos: 1 });
      const degraded = await eventually(async () => {
        const res = await hub.api<HubHealth>('GET', '/api/v1/health');
        return res.body.status === 'degraded' && res.body;
      }, 'health to report degraded storage');
      expect(degraded.storage!.errorsSinceSuccess).toBeGreaterThanOrEqual(1);
      expect(degraded.storage!.lastError).toMatch(/malformed|corrupt/i);
      expect(degraded.storage!.lastErrorAt).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(degraded.ingest!.storageErrors).toBeGreaterThanOrEqual(1);
      // Liveness without a token says degraded too, and nothing more.
      const publicView = await fetch(`${hub.hub.apiUrl}/api/v1/health`);
      expect(await publicView.json()).toEqual({ status: 'degraded' });
      client.end(true);

      await hub.stop();
      t = null;
      const failure = startTestHub({ dataDir });
      await expect(failure).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
      await expect(failure).rejects.toThrow(new RegExp(`hub database ${join(dataDir, 'hub.db').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} (is damaged: quick_check found|cannot be opened)`));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
