import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '@edgefleet/shared';
import { createAgentStore } from '../src/store/agent-store.js';
import { silentLogger, tempDir } from './support/temp.js';

const dirs: Array<{ remove: () => Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => d.remove()));
});

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
      for (let i = 0; i < 7 + round * 60; i++) seen.push(store.nextSeq());
      store.stop();
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect(seen[0]).toBeGreaterThanOrEqual(0);
  });

  it('keeps the seq above everything used even when the process dies without stop()', async () => {
    const { open } = await openStore();
    const first = open();
    const used = Array.from({ length: 150 }, () => first.nextSeq());
    // No stop(): the file stays as a crash would leave it (WAL, synchronous=FULL).
    const second = open();
    expect(second.nextSeq()).toBeGreaterThan(Math.max(...used));
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
});
