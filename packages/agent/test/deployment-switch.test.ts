import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ModelAssignment } from '@edgefleet/shared';
import { restoreActiveModels } from '../src/deployment/restore.js';
import { startInferenceLoad, jsonInfer } from '../../../test/support/inference-load.js';
import { startDeploymentRig, type DeploymentRig } from './support/deployment-rig.js';
import { desired, mlp, sha256Of } from './support/manifests.js';
import { silentLogger, tempDir } from './support/temp.js';

const prepareOnly = (a: ModelAssignment): ModelAssignment => ({ ...a, activate: false });
const phases = (events: Array<{ phase: string }>) => events.map((e) => e.phase);

describe('prepare, switch and switch back without downloading', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let rig: DeploymentRig;
  const v1 = mlp(11);
  const v2 = mlp(12);
  const v3 = mlp(13);
  const artifactRequests = () => rig.server.requests.filter((r) => r.path.startsWith('/api/v1/artifacts/')).length;

  beforeAll(async () => {
    dir = await tempDir('switch');
    rig = await startDeploymentRig({
      stateDir: dir.path,
      scratchDir: dir.path,
      creds: { username: 'dev-switch', password: 'secret-2' },
      retryDelayMs: 30,
      runner: { standby: { policy: 'on' } },
      localApi: {},
    });
    for (const bytes of [v1, v2, v3]) rig.server.files.set(sha256Of(bytes), bytes);
  });

  afterAll(async () => {
    await rig?.stop();
    await dir?.remove();
  });

  it('prepares a version without serving it, reports ready, then switches to the staged one on the go with no download', async () => {
    await rig.apply(await rig.assignment({ name: 'clf', version: '1.0.0', bytes: v1 }));
    const a2 = await rig.assignment({ name: 'clf', version: '2.0.0', bytes: v2, rolloutId: 'r2' });

    const prepared = await rig.apply(prepareOnly(a2));
    expect(phases(prepared)).toEqual(['downloading', 'downloading', 'verifying', 'loading', 'health-check', 'ready']);
    expect(prepared.at(-1)).toMatchObject({ rolloutId: 'r2', version: '2.0.0' });
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
    expect(rig.store.listModels().map((m) => [m.version, m.active])).toEqual([
      ['1.0.0', true],
      ['2.0.0', false],
    ]);
    expect(rig.runtime.loaded.size).toBe(2);

    // The same prepare-only document again (a reconnect): nothing to do.
    expect(await rig.apply(prepareOnly(a2))).toEqual([]);

    const downloads = artifactRequests();
    const switched = await rig.apply(a2);
    expect(phases(switched)).toEqual(['active']);
    expect(artifactRequests()).toBe(downloads);
    expect(rig.table.get('clf')?.version).toBe('2.0.0');
    expect(rig.table.standby('clf')?.version).toBe('1.0.0');
    expect(rig.store.listModels().filter((m) => m.active).map((m) => m.version)).toEqual(['2.0.0']);
  });

  it('rolls back to the previous version by a switch to its standby, with zero failed requests under load', async () => {
    const load = startInferenceLoad([
      { socketPath: rig.localApi!.socketPath, clients: 2, call: (i) => jsonInfer('clf', { name: 'input', shape: [1, 4], datatype: 'FP32', data: [i % 7, 0.5, -0.25, 1] }) },
    ]);
    await load.answered(20);
    const downloads = artifactRequests();
    const back = await rig.apply(await rig.assignment({ name: 'clf', version: '1.0.0', bytes: v1 }));
    expect(phases(back)).toEqual(['active']);
    await load.answered(20);
    const forward = await rig.apply(await rig.assignment({ name: 'clf', version: '2.0.0', bytes: v2 }));
    expect(phases(forward)).toEqual(['active']);
    await load.answered(20);
    const stats = await load.stop();

    expect(stats.failures).toEqual([]);
    expect(Object.keys(stats.versions).sort()).toEqual(['1.0.0', '2.0.0']);
    expect(artifactRequests()).toBe(downloads);
    expect(rig.table.get('clf')?.version).toBe('2.0.0');
    expect(rig.table.standby('clf')?.version).toBe('1.0.0');
    // Exactly two loaded: the active and its standby; nothing leaked by the switches.
    expect(rig.runtime.loaded.size).toBe(2);
  });

  it('replaces the standby with the newer previous version and keeps one previous file', async () => {
    await rig.apply(await rig.assignment({ name: 'clf', version: '3.0.0', bytes: v3 }));
    expect(rig.table.standby('clf')?.version).toBe('2.0.0');
    expect(rig.runtime.loaded.size).toBe(2);
    expect(rig.store.listModels().map((m) => [m.version, m.active])).toEqual([
      ['2.0.0', false],
      ['3.0.0', true],
    ]);
  });

  it('drops a staged candidate the hub no longer asks for', async () => {
    await rig.apply(prepareOnly(await rig.assignment({ name: 'clf', version: '1.0.0', bytes: v1 })));
    expect(rig.runtime.loaded.size).toBe(3);
    await rig.apply(await rig.assignment({ name: 'clf', version: '3.0.0', bytes: v3 }));
    expect(rig.runtime.loaded.size).toBe(2);
    expect(rig.table.get('clf')?.version).toBe('3.0.0');
  });
});

describe('after a restart', () => {
  it('loads a prepared version from its file on disk when the go comes, without downloading it again', async () => {
    const dir = await tempDir('restart-switch');
    const v1 = mlp(21);
    const v2 = mlp(22);
    const creds = { username: 'dev-restart', password: 'secret-3' };
    const first = await startDeploymentRig({ stateDir: dir.path, scratchDir: dir.path, creds, retryDelayMs: 30, runner: { standby: { policy: 'on' } } });
    let second: DeploymentRig | undefined;
    try {
      for (const bytes of [v1, v2]) first.server.files.set(sha256Of(bytes), bytes);
      await first.apply(await first.assignment({ name: 'clf', version: '1.0.0', bytes: v1 }));
      const a2 = await first.assignment({ name: 'clf', version: '2.0.0', bytes: v2 });
      expect(phases(await first.apply(prepareOnly(a2)))).toContain('ready');
      await first.stop();

      // A new process: same state directory and hub key, an artifact server with nothing on it.
      second = await startDeploymentRig({ stateDir: dir.path, scratchDir: dir.path, creds, retryDelayMs: 30, keys: first.keys, runner: { standby: { policy: 'on' } } });
      await restoreActiveModels({ store: second.store, runtime: second.runtime, table: second.table, logger: silentLogger, stateDir: dir.path });
      expect(second.table.get('clf')?.version).toBe('1.0.0');
      second.runner.submit(desired(2, a2));
      await second.runner.idle();
      expect(phases(second.events)).toEqual(['verifying', 'loading', 'health-check', 'active']);
      expect(second.server.requests).toEqual([]);
      expect(second.table.get('clf')?.version).toBe('2.0.0');
      expect(second.table.standby('clf')?.version).toBe('1.0.0');
    } finally {
      await second?.stop();
      await dir.remove();
    }
  });
});

describe('a newer document while a version is being prepared', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let rig: DeploymentRig;
  const v1 = mlp(31);
  const v2 = mlp(32);
  let a1: ModelAssignment;
  let a2: ModelAssignment;

  beforeEach(async () => {
    dir = await tempDir('superseded');
    rig = await startDeploymentRig({ stateDir: dir.path, scratchDir: dir.path, creds: { username: 'dev-supersede', password: 'secret-6' }, retryDelayMs: 30 });
    for (const bytes of [v1, v2]) rig.server.files.set(sha256Of(bytes), bytes);
    a1 = await rig.assignment({ name: 'clf', version: '1.0.0', bytes: v1 });
    a2 = await rig.assignment({ name: 'clf', version: '2.0.0', bytes: v2 });
    await rig.apply(a1);
  });

  afterEach(async () => {
    await rig?.stop();
    await dir?.remove();
  });

  it('does not switch to a version the hub stopped asking for during its download or load (a rollback meanwhile)', async () => {
    const before = rig.events.length;
    // The hub rolls back (desired names 1.0.0 again) while 2.0.0 is loading; no update lock is held.
    rig.afterLoad.push(async () => rig.submit(a1));
    rig.submit(a2);
    await rig.runner.idle();
    expect(rig.events.slice(before).filter((e) => e.phase === 'active')).toEqual([]);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
    expect(rig.store.listModels().find((m) => m.active)?.version).toBe('1.0.0');
    expect(rig.runtime.loaded.size).toBe(1);
  });

  it('a maintenance window that closes during the load: no switch outside it, the version staged and reported ready', async () => {
    const before = rig.events.length;
    rig.afterLoad.push(async () => rig.submit(prepareOnly(a2)));
    rig.submit(a2);
    await rig.runner.idle();
    expect(phases(rig.events.slice(before))).toEqual(['downloading', 'downloading', 'verifying', 'loading', 'health-check', 'ready']);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
    expect(rig.runtime.loaded.size).toBe(2);
    // The window opens again: a switch to the staged version, nothing loaded anew.
    expect(phases(await rig.apply(a2))).toEqual(['active']);
    expect(rig.table.get('clf')?.version).toBe('2.0.0');
  });
});
