import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { judgeHealth } from '../src/deployment/health-window.js';
import { shadowRefusal } from '../src/deployment/shadow-phase.js';
import { standbyFits } from '../src/deployment/standby.js';
import { createUpdateLock } from '../src/local-api/update-lock.js';
import { readManifestSidecars } from '../src/models/model-files.js';
import { unixRequest } from '../../../test/support/unix-http.js';
import { startDeploymentRig, type DeploymentRig } from './support/deployment-rig.js';
import { desired, gatherModel, mlp, sha256Of } from './support/manifests.js';
import { eventually, tempDir } from './support/temp.js';

describe('health window judgement (pure)', () => {
  const spec = { durationSec: 60, maxErrorRate: 0.2, minRequests: 10, maxP99Ratio: 2 };
  const baseline = { requests: 50, errors: 0, p99Ms: 4 };

  it('says nothing before minRequests', () => {
    expect(judgeHealth({ requests: 9, errors: 9, p99Ms: 100 }, baseline, spec)).toBeUndefined();
  });

  it('fails an error rate over the limit, naming the numbers', () => {
    expect(judgeHealth({ requests: 10, errors: 3, p99Ms: 1 }, baseline, spec)).toMatch(/error rate 0\.300 \(3 of 10 requests\) is over maxErrorRate 0\.2.*previous version 0\.000/);
    expect(judgeHealth({ requests: 10, errors: 2, p99Ms: 1 }, baseline, spec)).toBeUndefined();
  });

  it('fails a p99 regression against the previous version, only when the previous version has a p99 to compare', () => {
    expect(judgeHealth({ requests: 20, errors: 0, p99Ms: 9 }, baseline, spec)).toMatch(/p99 9\.00 ms is 2\.25x the previous version's 4\.00 ms, over maxP99Ratio 2/);
    expect(judgeHealth({ requests: 20, errors: 0, p99Ms: 8 }, baseline, spec)).toBeUndefined();
    expect(judgeHealth({ requests: 20, errors: 0, p99Ms: 9 }, { requests: 5, errors: 0, p99Ms: 4 }, spec)).toBeUndefined();
  });

  it('defaults: maxErrorRate 0.5 after 20 requests', () => {
    expect(judgeHealth({ requests: 20, errors: 10, p99Ms: 1 }, baseline, { durationSec: 1 })).toBeUndefined();
    expect(judgeHealth({ requests: 20, errors: 11, p99Ms: 1 }, baseline, { durationSec: 1 })).toMatch(/maxErrorRate 0\.5/);
  });
});

describe('shadow and standby rules (pure)', () => {
  const result = { samples: 40, agreement: 0.8, maxAbsDiff: 0.3, activeP50Ms: 1, candidateP50Ms: 1.2 };
  it('refuses a switch below minAgreement, not without samples or without a minimum', () => {
    expect(shadowRefusal(result, { sampleRate: 1, minAgreement: 0.9 })).toMatch(/agreement 0\.800 over 40 samples .* below minAgreement 0\.9/);
    expect(shadowRefusal({ ...result, samples: 0, agreement: 0 }, { sampleRate: 1, minAgreement: 0.9 })).toBeUndefined();
    expect(shadowRefusal(result, { sampleRate: 1 })).toBeUndefined();
    expect(shadowRefusal(result, { sampleRate: 1, minAgreement: 0.8 })).toBeUndefined();
  });

  it('keeps a standby when free memory exceeds four times the file plus 256 MB, or when forced', () => {
    const mb = 2 ** 20;
    expect(standbyFits('auto', 300 * mb, 10 * mb)).toBe(true);
    expect(standbyFits('auto', 290 * mb, 10 * mb)).toBe(false);
    expect(standbyFits('on', 0, 10 * mb)).toBe(true);
    expect(standbyFits('off', 10_000 * mb, 1)).toBe(false);
  });
});

// Both serve indices 0..9 (their golden input); only the first has a row 1000.
const wide = gatherModel(2000, 1);
const narrow = gatherModel(10, 2);
const healthWindow = { durationSec: 600, maxErrorRate: 0.2, minRequests: 10 };

const lookupOn = (rig: DeploymentRig, index: number) =>
  unixRequest(rig.localApi!.socketPath, 'POST', '/v2/models/lookup/infer', JSON.stringify({ inputs: [{ name: 'idx', shape: [1], datatype: 'INT64', data: [index] }] }), {
    'content-type': 'application/json',
  });

/** Sends lookups that 2.0.0 (narrow) fails until a `rolled-back` event comes after event `from`. */
async function driveUntilRolledBack(rig: DeploymentRig, from: number) {
  const rolledBack = () => rig.events.slice(from).find((e) => e.phase === 'rolled-back');
  for (let i = 0; i < 100 && !rolledBack(); i++) await lookupOn(rig, i % 2 === 0 ? 1000 : 3);
  return eventually(rolledBack, 'the rolled-back event');
}

describe.each([
  { standby: 'on' as const, backBy: 'a switch to the standby' },
  { standby: 'off' as const, backBy: 'loading the previous file (no standby)' },
])('health window on real parts, going back by $backBy', ({ standby }) => {
  let dir: { path: string; remove: () => Promise<void> };
  let rig: DeploymentRig;
  let reportedChanges = 0;
  const other = mlp(1);
  // Passes the golden input like the others, but is signed with a wrong golden vector (see `broken`).
  const third = gatherModel(20, 3);
  const lookup = (index: number) => lookupOn(rig, index);

  beforeAll(async () => {
    dir = await tempDir('health');
    rig = await startDeploymentRig({
      stateDir: dir.path,
      scratchDir: dir.path,
      creds: { username: 'dev-health', password: 'secret-4' },
      retryDelayMs: 30,
      runner: { standby: { policy: standby } },
      localApi: {},
      onStateChange: () => reportedChanges++,
    });
    for (const bytes of [wide, narrow, other, third]) rig.server.files.set(sha256Of(bytes), bytes);
  });

  afterAll(async () => {
    await rig?.stop();
    await dir?.remove();
  });

  it('switches back on its own when the new version errors on real inputs, reports UNHEALTHY, and does not reinstall it', async () => {
    await rig.apply(await rig.assignment({ name: 'lookup', version: '1.0.0', bytes: wide }));
    for (let i = 0; i < 30; i++) expect((await lookup(i % 2 === 0 ? 1000 : i % 10)).status).toBe(200);

    const bad = { ...(await rig.assignment({ name: 'lookup', version: '2.0.0', bytes: narrow, rolloutId: 'r-health' })), healthWindow };
    const got = await rig.apply(bad);
    expect(got.at(-1)).toMatchObject({ phase: 'active', version: '2.0.0' });
    expect(rig.table.standby('lookup')?.version).toBe(standby === 'on' ? '1.0.0' : undefined);
    const changesBefore = reportedChanges;

    // The runner is idle: the window runs on its own, from the requests the local API records.
    const downloads = rig.server.requests.length;
    const statuses: number[] = [];
    for (let i = 0; i < 100 && !rig.events.some((e) => e.phase === 'rolled-back'); i++) statuses.push((await lookup(i % 2 === 0 ? 1000 : 3)).status);
    const rolledBack = await eventually(() => rig.events.find((e) => e.phase === 'rolled-back'), 'the rolled-back event');
    expect(statuses.filter((s) => s !== 200).length).toBeGreaterThan(0);
    expect(rolledBack).toMatchObject({ model: 'lookup', version: '2.0.0', rolloutId: 'r-health', code: 'UNHEALTHY', keptVersion: '1.0.0' });
    expect(rolledBack.message).toMatch(/error rate 0\.\d+ \(\d+ of \d+ requests\) is over maxErrorRate 0\.2.*switched back to 1\.0\.0/);

    expect(rig.table.get('lookup')?.version).toBe('1.0.0');
    expect(rig.store.listModels().filter((m) => m.active).map((m) => m.version)).toEqual(['1.0.0']);
    expect(rig.store.listFailures()).toMatchObject([{ name: 'lookup', version: '2.0.0', code: 'UNHEALTHY', retryable: false }]);
    expect(reportedChanges).toBeGreaterThan(changesBefore);
    expect(rig.server.requests.length).toBe(downloads);
    // Beside the files too: a rebuild after agent.db is lost would serve the version switched back to.
    const sidecars = (await readManifestSidecars(dir.path)).sort((a, b) => a.sidecar!.activatedAt - b.sidecar!.activatedAt);
    expect(sidecars.at(-1)!.sha256).toBe(sha256Of(wide));
    expect((await lookup(1000)).status).toBe(200);
    await eventually(() => rig.runtime.loaded.size === 1, 'the unhealthy version to close');

    // The hub's same document again (a reconnect): the unhealthy version is not installed again.
    const before = rig.events.length;
    rig.runner.submit(desired(rig.nextVersion() - 1, bad));
    await rig.runner.idle();
    expect(rig.events.length).toBe(before);
    expect(rig.table.get('lookup')?.version).toBe('1.0.0');
  });

  it('keeps the rolled-back version out when another model\'s rollout moves the desired version; a new rollout of it tries again', async () => {
    const same = { ...(await rig.assignment({ name: 'lookup', version: '2.0.0', bytes: narrow, rolloutId: 'r-health' })), healthWindow };
    const clf = await rig.assignment({ name: 'clf', version: '1.0.0', bytes: other, rolloutId: 'r-other' });
    const got = await rig.apply(same, clf);
    expect(got.filter((e) => e.model === 'lookup')).toEqual([]);
    expect(got.at(-1)).toMatchObject({ model: 'clf', phase: 'active' });
    expect(rig.table.get('lookup')?.version).toBe('1.0.0');

    const retry = { ...(await rig.assignment({ name: 'lookup', version: '2.0.0', bytes: narrow, rolloutId: 'r-health-2' })), healthWindow };
    const before = rig.events.length;
    expect((await rig.apply(retry, clf)).at(-1)).toMatchObject({ model: 'lookup', version: '2.0.0', rolloutId: 'r-health-2', phase: 'active' });
    expect(await driveUntilRolledBack(rig, before)).toMatchObject({ version: '2.0.0', rolloutId: 'r-health-2', code: 'UNHEALTHY' });
    expect(rig.table.get('lookup')?.version).toBe('1.0.0');
    expect(rig.store.listFailures()).toMatchObject([{ name: 'lookup', rolloutId: 'r-health-2', code: 'UNHEALTHY', retryable: false }]);
  });

  it('a next version that fails to install leaves the active version its health window', async () => {
    const retry = { ...(await rig.assignment({ name: 'lookup', version: '2.0.0', bytes: narrow, rolloutId: 'r-health-3' })), healthWindow };
    const clf = await rig.assignment({ name: 'clf', version: '1.0.0', bytes: other, rolloutId: 'r-other' });
    expect((await rig.apply(retry, clf)).at(-1)).toMatchObject({ version: '2.0.0', phase: 'active' });

    // 3.0.0 fails its golden check after 2.0.0's window started: 2.0.0 keeps serving, and keeps being watched.
    const broken = await rig.assignment({ name: 'lookup', version: '3.0.0', bytes: third, rolloutId: 'r-broken', goldenOffset: 0.5 });
    const before = rig.events.length;
    expect((await rig.apply(broken, clf)).at(-1)).toMatchObject({ version: '3.0.0', phase: 'failed', code: 'INVALID_MODEL', keptVersion: '2.0.0' });
    expect(await driveUntilRolledBack(rig, before)).toMatchObject({ version: '2.0.0', rolloutId: 'r-health-3', code: 'UNHEALTHY', keptVersion: '1.0.0' });
    expect(rig.table.get('lookup')?.version).toBe('1.0.0');
  });
});

describe('health window while the next switch waits for the update lock', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let rig: DeploymentRig;
  const lock = createUpdateLock();
  const lookup = (index: number) => lookupOn(rig, index);

  beforeAll(async () => {
    dir = await tempDir('health-lock');
    rig = await startDeploymentRig({
      stateDir: dir.path,
      scratchDir: dir.path,
      creds: { username: 'dev-health-lock', password: 'secret-6' },
      retryDelayMs: 30,
      runner: { standby: { policy: 'on' }, updateLock: lock },
      localApi: { updateLock: lock },
    });
    for (const bytes of [wide, narrow]) rig.server.files.set(sha256Of(bytes), bytes);
  });

  afterAll(async () => {
    await rig?.stop();
    await dir?.remove();
  });

  it('still switches back on its own; the deferred switch to that same version then leaves one copy loaded', async () => {
    const first = await rig.assignment({ name: 'lookup', version: '1.0.0', bytes: wide, rolloutId: 'r-1' });
    await rig.apply(first);
    for (let i = 0; i < 30; i++) expect((await lookup(i % 10)).status).toBe(200);
    await rig.apply({ ...(await rig.assignment({ name: 'lookup', version: '2.0.0', bytes: narrow, rolloutId: 'r-2' })), healthWindow });
    expect(rig.table.standby('lookup')?.version).toBe('1.0.0');

    // The hub rolls back to 1.0.0; the switch (to the standby) waits behind a local lock.
    const held = lock.acquire('critical job', 600);
    const before = rig.events.length;
    rig.submit(first);
    await eventually(() => rig.events.slice(before).some((e) => e.phase === 'deferred'), 'the deferred event');

    expect(await driveUntilRolledBack(rig, before)).toMatchObject({ version: '2.0.0', rolloutId: 'r-2', keptVersion: '1.0.0' });
    expect(rig.table.get('lookup')?.version).toBe('1.0.0');

    lock.release(held.id);
    await rig.runner.idle();
    expect(rig.events.at(-1)).toMatchObject({ phase: 'active', version: '1.0.0', rolloutId: 'r-1' });
    expect(rig.table.get('lookup')?.version).toBe('1.0.0');
    expect(rig.table.listStandby()).toEqual([]);
    await eventually(() => rig.runtime.loaded.size === 1, 'the second copy of 1.0.0 to close');
    expect((await lookup(1000)).status).toBe(200);
  });
});
