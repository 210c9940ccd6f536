import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '@edgefleet/shared';
import { createAgentStore, type AgentStore } from '../src/store/agent-store.js';
import { MIGRATIONS } from '../src/store/migrations.js';
import { SEQ_BLOCK } from '../src/store/seq-counter.js';
import { lockStateDir } from '../src/store/state-lock.js';
import { silentLogger, tempDir } from './support/temp.js';

const dirs: Array<{ remove: () => Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => d.remove()));
});

/** Stores one record and returns its seq: the one way the agent takes sequence numbers. */
function appendRecord(store: AgentStore): number {
  return store.outbox().append('t', (seq) => Buffer.from(String(seq))).seq;
}

async function openStore() {
  const dir = await tempDir('store');
  dirs.push(dir);
  const path = join(dir.path, 'agent.db');
  return { path, open: () => { const s = createAgentStore({ path, logger: silentLogger }); s.start(); return s; } };
}

const manifest = (version: string, sha: string): Manifest => ({
  v: 1,
  model: 'm',
  version,
  profile: 'fp32',
  sha256: sha,
  size: 3,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
  golden: { inputs: [], outputs: [], tolerance: { atol: 1e-4 } },
  createdAt: '2026-01-01T00:00:00Z',
});

describe('agent store', () => {
  it('never hands out a sequence number twice, across reopen', async () => {
    const { open } = await openStore();
    const seen: number[] = [];
    for (let round = 0; round < 4; round++) {
      const store = open();
      for (let i = 0; i < 7 + round * 60; i++) seen.push(appendRecord(store));
      store.stop();
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect(seen[0]).toBeGreaterThanOrEqual(0);
  });

  it('keeps the seq above everything used even when the process dies without stop()', async () => {
    const { open } = await openStore();
    const first = open();
    const used = Array.from({ length: 150 }, () => appendRecord(first));
    // No stop(): the file stays as a crash would leave it (WAL, synchronous=FULL).
    const second = open();
    expect(appendRecord(second)).toBeGreaterThan(Math.max(...used));
    second.stop();
    first.stop();
  });

  it('stores installed models with one active version per name, and the desired version', async () => {
    const { open } = await openStore();
    const store = open();
    store.putModel({ name: 'm', version: '1', sha256: 'a'.repeat(64), profile: 'fp32', path: '/x/a.onnx', manifest: manifest('1', 'a'.repeat(64)) });
    store.putModel({ name: 'm', version: '2', sha256: 'b'.repeat(64), profile: 'fp32', path: '/x/b.onnx', manifest: manifest('2', 'b'.repeat(64)) });
    store.setActive('m', '1');
    store.setActive('m', '2');
    store.setDesiredVersion(7);
    store.stop();

    const again = open();
    const rows = again.listModels();
    expect(rows.map((r) => [r.version, r.active])).toEqual([['1', false], ['2', true]]);
    expect(rows[1]!.manifest.inputs[0]!.name).toBe('x');
    expect(again.desiredVersion()).toBe(7);
    expect(() => again.setActive('m', '9')).toThrow(/not installed/);
    expect(again.listModels().find((r) => r.active)?.version).toBe('2');
    again.stop();
    again.stop();
  });

  it('remembers failures and counts attempts', async () => {
    const { open } = await openStore();
    const store = open();
    const f = { name: 'm', sha256: 'c'.repeat(64), version: '3', desiredVersion: 4, code: 'UNAVAILABLE', message: 'down', retryable: true };
    expect(store.recordFailure(f).attempts).toBe(1);
    expect(store.recordFailure({ ...f, desiredVersion: 5 }).attempts).toBe(2);
    expect(store.listFailures()).toMatchObject([{ desiredVersion: 5, attempts: 2, retryable: true }]);
    store.clearFailure('m', 'c'.repeat(64));
    expect(store.listFailures()).toEqual([]);
    store.stop();
  });

  it('keeps the rollout of a failure, and reads the failures of a database from before that column', async () => {
    const { path, open } = await openStore();
    const old = new Database(path);
    old.exec('CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    for (const m of MIGRATIONS.filter((m) => m.id <= 2)) {
      old.exec(m.sql);
      old.prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)').run(m.id, m.name);
    }
    old.prepare("INSERT INTO failures VALUES ('m', ?, '2', 4, 'UNHEALTHY', 'bad', 0, 1, 10)").run('a'.repeat(64));
    old.close();

    const store = open();
    expect(store.isFresh()).toBe(false);
    expect(store.listFailures()).toEqual([
      { name: 'm', sha256: 'a'.repeat(64), version: '2', desiredVersion: 4, code: 'UNHEALTHY', message: 'bad', retryable: false, attempts: 1, failedAt: 10 },
    ]);
    const f = { name: 'm', sha256: 'a'.repeat(64), version: '2', desiredVersion: 5, code: 'SHADOW_DISAGREEMENT', message: 'low', retryable: false };
    expect(store.recordFailure({ ...f, rolloutId: 'r-9' })).toMatchObject({ rolloutId: 'r-9', attempts: 2 });
    store.stop();
    const again = open();
    expect(again.listFailures()).toMatchObject([{ rolloutId: 'r-9', desiredVersion: 5 }]);
    // A later failure outside a rollout leaves no rollout behind.
    expect(again.recordFailure(f)).not.toHaveProperty('rolloutId');
    again.stop();
  });
});

/** A pino logger whose lines the test can read. */
function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { logger: pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) }), lines };
}

describe('agent store: record identity and the outbox', () => {
  it('gives each database file a random epoch, kept across reopen; a new file gets a new one', async () => {
    const a = await openStore();
    const first = a.open();
    const epoch = first.epoch();
    expect(epoch).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    first.stop();
    const again = a.open();
    expect(again.epoch()).toBe(epoch);
    expect(again.isFresh()).toBe(false);
    again.stop();
    const b = await openStore();
    const other = b.open();
    expect(other.isFresh()).toBe(true);
    expect(other.epoch()).not.toBe(epoch);
    other.stop();
  });

  it('gives a database from before epochs one at upgrade, and its seq keeps going up', async () => {
    const { path, open } = await openStore();
    const old = new Database(path);
    old.exec('CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    old.exec(MIGRATIONS[0]!.sql);
    old.prepare('INSERT INTO schema_migrations VALUES (1, ?, 0)').run(MIGRATIONS[0]!.name);
    old.prepare("UPDATE meta SET value = 500 WHERE key = 'seq_reserved'").run();
    old.close();
    const store = open();
    expect(store.isFresh()).toBe(false);
    expect(store.epoch()).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    expect(appendRecord(store)).toBeGreaterThan(500);
    store.stop();
  });

  it('bounds the outbox by bytes and by age: the oldest records go first, and are counted across restarts', async () => {
    const dir = await tempDir('outbox');
    dirs.push(dir);
    let clock = 1_000_000;
    const open = () => {
      const s = createAgentStore({ path: join(dir.path, 'agent.db'), logger: silentLogger, now: () => clock, outbox: { maxBytes: 10_000, maxAgeMs: 60_000 } });
      s.start();
      return s;
    };
    const store = open();
    const record = (seq: number) => Buffer.from(JSON.stringify({ seq, pad: 'x'.repeat(480) }));
    for (let i = 0; i < 100; i++) store.outbox().append('t', record);
    const stats = store.outbox().stats();
    expect(stats.bytes).toBeLessThanOrEqual(10_000);
    expect(stats.pending + stats.evicted).toBe(100);
    expect(stats.evicted).toBeGreaterThan(0);
    const kept = store.outbox().readAfter(0, 1000).map((r) => r.seq);
    expect(kept).toEqual(Array.from({ length: stats.pending }, (_, i) => 101 - stats.pending + i));
    store.stop();

    const reopened = open();
    expect(reopened.outbox().stats()).toMatchObject({ pending: stats.pending, bytes: stats.bytes, evicted: stats.evicted });
    // Acknowledged records leave without counting as dropped.
    reopened.outbox().remove(kept.slice(0, 5));
    expect(reopened.outbox().stats()).toMatchObject({ pending: stats.pending - 5, evicted: stats.evicted });
    clock += 120_000;
    const fresh = reopened.outbox().append('t', record);
    expect(reopened.outbox().readAfter(0, 1000).map((r) => r.seq)).toEqual([fresh.seq]);
    expect(reopened.outbox().stats()).toMatchObject({ pending: 1, evicted: stats.evicted + stats.pending - 5 });
    reopened.stop();
  });

  it('uses no seq for a record that fails to build', async () => {
    const { open } = await openStore();
    const store = open();
    expect(() => store.outbox().append('t', () => { throw new Error('invalid record'); })).toThrow('invalid record');
    expect(store.outbox().append('t', (seq) => Buffer.from(String(seq))).seq).toBe(1);
    expect(store.outbox().stats()).toMatchObject({ pending: 1, refused: 0 });
    store.stop();
  });
});

describe('agent store on a full disk', () => {
  /** A real full filesystem: a small tmpfs mounted for the test, which needs root (as CI runs; no skip). */
  function requireRoot(): void {
    if (process.getuid?.() !== 0) throw new Error('the full-disk test mounts a tmpfs and needs root: run the suite as root (CI does)');
  }

  it('refuses to hand out a seq it could not reserve, and after a restart continues above every seq handed out', async () => {
    requireRoot();
    const dir = await tempDir('full');
    const mnt = join(dir.path, 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    try {
      const path = join(mnt, 'agent.db');
      const open = () => { const s = createAgentStore({ path, logger: silentLogger }); s.start(); return s; };
      const store = open();
      // Every seq of the first reserved block is used while there is room...
      const handedOut: number[] = [];
      while (handedOut.length < SEQ_BLOCK) handedOut.push(appendRecord(store));
      const filler = join(mnt, 'filler');
      fillDisk(filler);

      // ...the next block cannot be reserved: no seq, as often as it is asked.
      for (let i = 0; i < 3; i++) expect(() => appendRecord(store)).toThrow(expect.objectContaining({ code: 'DISK_FULL', message: expect.stringMatching(/record not stored in .*agent\.db/) }));
      expect(store.outbox().stats()).toMatchObject({ pending: SEQ_BLOCK, refused: 3 });

      rmSync(filler);
      const next = store.outbox().append('t', (seq) => Buffer.from(String(seq)));
      expect(next.seq).toBe(SEQ_BLOCK + 1);
      handedOut.push(next.seq);
      store.stop();

      const restarted = open();
      const afterRestart = appendRecord(restarted);
      expect(afterRestart).toBeGreaterThan(Math.max(...handedOut));
      expect(restarted.outbox().readAfter(SEQ_BLOCK, 10).map((r) => r.seq)).toEqual([SEQ_BLOCK + 1, afterRestart]);
      restarted.stop();
    } finally {
      execFileSync('umount', [mnt]);
      await dir.remove();
    }
  });
});

/** Writes until the filesystem answers ENOSPC. */
function fillDisk(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

describe('agent store: a corrupt agent.db', () => {
  async function corruptAndOpen(damage: (path: string) => void) {
    const { path, open } = await openStore();
    const store = open();
    store.putModel({ name: 'm', version: '1', sha256: 'a'.repeat(64), profile: 'fp32', path: '/x/a.onnx', manifest: manifest('1', 'a'.repeat(64)) });
    for (let i = 0; i < 300; i++) store.outbox().append('t', (seq) => Buffer.from(JSON.stringify({ seq, pad: 'p'.repeat(300) })));
    const epoch = store.epoch();
    store.stop();
    damage(path);
    const { logger, lines } = capturingLogger();
    const fresh = createAgentStore({ path, logger });
    fresh.start();
    return { path, epoch, fresh, lines };
  }

  it.each([
    ['garbage in place of the file', (path: string) => writeFileSync(path, randomBytes(64 * 1024))],
    ['damaged pages inside a valid file', (path: string) => {
      const fd = openSync(path, 'r+');
      writeSync(fd, randomBytes(4096 * 3), 0, 4096 * 3, 4096 * 2);
      closeSync(fd);
    }],
  ])('%s: is named in an error, moved aside, and replaced by a fresh database with a new epoch', async (_what, damage) => {
    const { path, epoch, fresh, lines } = await corruptAndOpen(damage);
    const error = lines.find((l) => l.level === 50);
    expect(error?.msg).toContain(path);
    const movedTo = String(error?.movedTo);
    expect(movedTo).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.corrupt-\\d+$`));
    expect(existsSync(movedTo)).toBe(true);
    expect(fresh.isFresh()).toBe(true);
    expect(fresh.epoch()).not.toBe(epoch);
    expect(fresh.listModels()).toEqual([]);
    expect(fresh.outbox().stats().pending).toBe(0);
    fresh.stop();
  });
});

describe('state directory lock', () => {
  it('refuses a second holder, naming the lock file and the pid that holds it; released, it can be taken again', async () => {
    const dir = await tempDir('lock');
    dirs.push(dir);
    const first = lockStateDir(dir.path, 4242);
    expect(() => lockStateDir(dir.path, 777)).toThrow(
      expect.objectContaining({ code: 'CONFLICT', message: expect.stringMatching(new RegExp(`${join(dir.path, 'agent.lock')}.*pid 4242`)) }),
    );
    first.release();
    first.release();
    const second = lockStateDir(dir.path, 777);
    second.release();
  });
});

describe('agent store: a database that went back', () => {
  it('starts a new epoch when agent.db is restored from an older copy, and keeps seqs above those used', async () => {
    const { path, open } = await openStore();
    const first = open();
    const epoch = first.epoch();
    appendRecord(first);
    first.stop();
    copyFileSync(path, `${path}.backup`);

    const second = open();
    const used = Array.from({ length: 250 }, () => appendRecord(second));
    second.stop();
    copyFileSync(`${path}.backup`, path);
    rmSync(`${path}-wal`, { force: true });
    rmSync(`${path}-shm`, { force: true });

    const restored = open();
    const newEpoch = restored.epoch();
    expect(newEpoch).not.toBe(epoch);
    expect(newEpoch).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    expect(appendRecord(restored)).toBeGreaterThan(Math.max(...used));
    restored.stop();
    // Only a database that went back gets a new epoch.
    const again = open();
    expect(again.epoch()).toBe(newEpoch);
    again.stop();
  });

  it('does not believe a damaged mark that would push seqs out of the range records may carry', async () => {
    const { path, open } = await openStore();
    const first = open();
    const epoch = first.epoch();
    appendRecord(first);
    first.stop();
    writeFileSync(`${path}.seq`, JSON.stringify({ epoch, reserved: Number.MAX_SAFE_INTEGER - 1 }));
    const reopened = open();
    expect(reopened.epoch()).toBe(epoch);
    expect(appendRecord(reopened)).toBeLessThan(1000);
    reopened.stop();
  });
});
