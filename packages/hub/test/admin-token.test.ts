import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureAdminToken } from '../src/auth/admin-token.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { createSettingsRepo } from '../src/store/settings-repo.js';

describe('admin token', () => {
  let dir: string;
  let db: Db;
  const log = pino({ level: 'silent' });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ef-hub-admin-'));
    db = openDatabase(join(dir, 'hub.db'), log);
  });
  afterEach(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('replaces a stale token file left from a lost database, atomically and 0600', async () => {
    const file = join(dir, 'admin-token');
    await writeFile(file, 'stale-token\n', { mode: 0o644 });
    const tokens = ensureAdminToken(createSettingsRepo(db), dir, undefined, log);
    const token = (await readFile(file, 'utf8')).trim();
    expect(token).not.toBe('stale-token');
    expect(tokens.verify(token)).toBe(true);
    expect(tokens.verify('stale-token')).toBe(false);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('keeps the stored token on later starts and lets a configured token replace it', async () => {
    const settings = createSettingsRepo(db);
    ensureAdminToken(settings, dir, undefined, log);
    const first = (await readFile(join(dir, 'admin-token'), 'utf8')).trim();
    expect(ensureAdminToken(settings, dir, undefined, log).verify(first)).toBe(true);
    const configured = ensureAdminToken(settings, dir, 'configured-token', log);
    expect(configured.verify('configured-token')).toBe(true);
    expect(configured.verify(first)).toBe(false);
  });

  it('warns, without the token, when a configured admin token is short enough to guess', () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        cb();
      },
    });
    const captured = pino({ level: 'info' }, sink);
    ensureAdminToken(createSettingsRepo(db), dir, 'admin', captured);
    const warning = lines.find((l) => l.level === 40);
    expect(warning?.msg).toMatch(/EDGEFLEET_ADMIN_TOKEN is 5 characters long/);
    expect(JSON.stringify(lines)).not.toContain('"admin"');
    lines.length = 0;
    ensureAdminToken(createSettingsRepo(db), dir, 'efa_' + 'x'.repeat(43), captured);
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
  });
});
