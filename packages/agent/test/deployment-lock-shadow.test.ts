import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ShadowResult } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import type { ShadowRunner } from '../src/deployment/step-context.js';
import { createShadowRegistry } from '../src/inference/shadow-registry.js';
import { createUpdateLock, type UpdateLock } from '../src/local-api/update-lock.js';
import { jsonInfer, startInferenceLoad } from '../../../test/support/inference-load.js';
import { unixRequest } from '../../../test/support/unix-http.js';
import { startDeploymentRig, type DeploymentRig, type DeploymentRigOptions } from './support/deployment-rig.js';
import { mlp, sha256Of } from './support/manifests.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

const phases = (events: Array<{ phase: string }>) => events.map((e) => e.phase);
const v1 = mlp(41);
const v2 = mlp(42);
const v3 = mlp(43);
/** The same weights as v1 under another graph name: another file, the same answers. */
const v1Twin = buildMlp({ name: 'twin', inputSize: 4, hidden: [8], outputSize: 3, seed: 41 });

async function rigWith(dir: string, opts: Partial<DeploymentRigOptions>): Promise<DeploymentRig> {
  const rig = await startDeploymentRig({ stateDir: dir, scratchDir: dir, creds: { username: 'dev-lock', password: 'secret-5' }, retryDelayMs: 30, ...opts });
  for (const bytes of [v1, v2, v3, v1Twin]) rig.server.files.set(sha256Of(bytes), bytes);
  return rig;
}

describe('update lock', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let rig: DeploymentRig;
  let lock: UpdateLock;

  const acquire = async (reason: string) => {
    const res = await unixRequest(rig.localApi!.socketPath, 'POST', '/v2/edgefleet/update-locks', JSON.stringify({ reason, ttlSec: 600 }), { 'content-type': 'application/json' });
    expect(res.status).toBe(201);
    return res.json<{ id: string }>().id;
  };
  const release = async (id: string) => expect((await unixRequest(rig.localApi!.socketPath, 'DELETE', `/v2/edgefleet/update-locks/${id}`)).status).toBe(200);

  beforeAll(async () => {
    dir = await tempDir('lock');
    lock = createUpdateLock();
    rig = await rigWith(dir.path, { runner: { updateLock: lock, standby: { policy: 'on' } }, localApi: { updateLock: lock } });
    await rig.apply(await rig.assignment({ name: 'clf', version: '1.0.0', bytes: v1 }));
  });

  afterAll(async () => {
    await rig?.stop();
    await dir?.remove();
  });

  it('defers the switch while a local application holds the lock, saying why and until when, and switches on release', async () => {
    const id = await acquire('nightly calibration');
    const before = rig.events.length;
    const t0 = Date.now();
    rig.submit({ ...(await rig.assignment({ name: 'clf', version: '2.0.0', bytes: v2 })), maxDeferSec: 120 });
    const deferred = await eventually(() => rig.events.slice(before).find((e) => e.phase === 'deferred'), 'the deferred event');
    expect(deferred.lockReason).toBe('nightly calibration');
    expect(deferred.deferUntil).toBeGreaterThanOrEqual(t0 + 120_000);
    expect(deferred.deferUntil).toBeLessThanOrEqual(Date.now() + 120_000);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');

    await release(id);
    await rig.runner.idle();
    expect(phases(rig.events.slice(before)).slice(-2)).toEqual(['deferred', 'active']);
    expect(rig.table.get('clf')?.version).toBe('2.0.0');
  });

  it('a newer document ends a deferral at once (a rollback does not wait behind it)', async () => {
    const id = await acquire('critical job');
    const before = rig.events.length;
    rig.submit(await rig.assignment({ name: 'clf', version: '3.0.0', bytes: v3 }));
    await eventually(() => rig.events.slice(before).some((e) => e.phase === 'deferred'), 'the deferred event');

    // The hub rolls back: the document names the version that is active again. Default deferral is 600 s.
    rig.submit(await rig.assignment({ name: 'clf', version: '2.0.0', bytes: v2 }));
    await rig.runner.idle();
    expect(phases(rig.events.slice(before))).not.toContain('active');
    expect(rig.table.get('clf')?.version).toBe('2.0.0');
    // The interrupted candidate was staged, then discarded: only the active version and its standby are loaded.
    expect(rig.runtime.loaded.size).toBe(2);
    expect(lock.held().map((l) => l.id)).toEqual([id]);
    await release(id);
  });

  it('a newer document that still wants the deferred version keeps its deadline and switches once the lock goes', async () => {
    const id = await acquire('job 3');
    const before = rig.events.length;
    const a3 = { ...(await rig.assignment({ name: 'clf', version: '3.0.0', bytes: v3 })), maxDeferSec: 300 };
    rig.submit(a3);
    const first = await eventually(() => rig.events.slice(before).find((e) => e.phase === 'deferred'), 'the deferred event');
    // A document that adds nothing for this model (same assignment) does not interrupt the wait.
    rig.submit(a3);
    await release(id);
    await rig.runner.idle();
    // The interrupted candidate of the previous test left its verified file: loaded again, not downloaded.
    expect(phases(rig.events.slice(before))).toEqual(['verifying', 'loading', 'health-check', 'deferred', 'active']);
    expect(first.deferUntil).toBeDefined();
    expect(rig.table.get('clf')?.version).toBe('3.0.0');
  });

  it('switches regardless once the deferral limit passes', async () => {
    const id = await acquire('never ending');
    const before = rig.events.length;
    rig.submit({ ...(await rig.assignment({ name: 'clf', version: '1.0.0', bytes: v1 })), maxDeferSec: 1 });
    await rig.runner.idle();
    expect(phases(rig.events.slice(before)).slice(-2)).toEqual(['deferred', 'active']);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
    await release(id);
  });
});

describe('shadow phase', () => {
  let dir: { path: string; remove: () => Promise<void> } | undefined;
  let rig: DeploymentRig | undefined;

  afterEach(async () => {
    await rig?.stop();
    await dir?.remove();
    rig = undefined;
  });

  it('runs the candidate beside the active version on real local requests, reports agreement, then switches with zero failed requests', async () => {
    dir = await tempDir('shadow');
    const registry = createShadowRegistry({ logger: silentLogger });
    rig = await rigWith(dir.path, { runner: { shadow: registry, standby: { policy: 'on' } }, localApi: { shadow: registry } });
    await rig.apply(await rig.assignment({ name: 'clf', version: '1.0.0', bytes: v1 }));
    const load = startInferenceLoad([
      { socketPath: rig.localApi!.socketPath, clients: 2, call: (i) => jsonInfer('clf', { name: 'input', shape: [1, 4], datatype: 'FP32', data: [(i % 11) / 5 - 1, 0.3, -0.7, (i % 3) / 2] }) },
    ]);
    try {
      const before = rig.events.length;
      rig.submit({ ...(await rig.assignment({ name: 'clf', version: '1.1.0', bytes: v1Twin })), shadow: { sampleRate: 1, minSamples: 20, minAgreement: 0.99 } });
      await rig.runner.idle();
      await load.answered(20);
      const got = rig.events.slice(before);
      const shadow = got.filter((e) => e.phase === 'shadow');
      expect(shadow[0]!.progress).toBe(0);
      expect(shadow.map((e) => e.progress)).toEqual([...shadow.map((e) => e.progress)].sort());
      const result = shadow.at(-1)!.shadow as ShadowResult;
      expect(result.samples).toBeGreaterThanOrEqual(20);
      expect(result.agreement).toBe(1);
      expect(got.at(-1)).toMatchObject({ phase: 'active', version: '1.1.0' });
    } finally {
      const stats = await load.stop();
      expect(stats.failures).toEqual([]);
    }
  });

  it('refuses to switch when the agreement is below minAgreement: failed, not retryable, with the result; the active version keeps serving', async () => {
    dir = await tempDir('shadow-refuse');
    const result: ShadowResult = { samples: 30, agreement: 0.5, maxAbsDiff: 0.42, activeP50Ms: 0.4, candidateP50Ms: 0.5 };
    const fake: ShadowRunner = {
      async run(_candidate, opts, _signal, onProgress) {
        for (let n = 1; n <= opts.minSamples; n++) onProgress?.(n);
        return result;
      },
    };
    rig = await rigWith(dir.path, { runner: { shadow: fake } });
    await rig.apply(await rig.assignment({ name: 'clf', version: '1.0.0', bytes: v1 }));
    const refused = { ...(await rig.assignment({ name: 'clf', version: '2.0.0', bytes: v2, rolloutId: 'r-shadow' })), shadow: { sampleRate: 0.5, minSamples: 30, minAgreement: 0.9 } };
    const got = await rig.apply(refused);
    expect(phases(got)).toEqual(['downloading', 'downloading', 'verifying', 'loading', 'health-check', ...Array(11).fill('shadow'), 'failed']);
    expect(got.filter((e) => e.phase === 'shadow').map((e) => e.progress)).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    expect(got.at(-2)!.shadow).toEqual(result);
    expect(got.at(-1)).toMatchObject({ code: 'SHADOW_DISAGREEMENT', retryable: false, keptVersion: '1.0.0', shadow: result });
    expect(got.at(-1)!.message).toMatch(/agreement 0\.500 over 30 samples .* below minAgreement 0\.9/);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
    expect(rig.runtime.loaded.size).toBe(1);
    expect(rig.store.listFailures()).toMatchObject([{ code: 'SHADOW_DISAGREEMENT', retryable: false, rolloutId: 'r-shadow' }]);
    // The same rollout in the next desired version (another model's rollout moved it): not shadowed again.
    expect(await rig.apply(refused)).toEqual([]);
  });

  it('a newer document ends a shadow phase at once and the candidate is closed', async () => {
    dir = await tempDir('shadow-interrupt');
    const waiting: ShadowRunner = {
      run: (_candidate, _opts, signal) =>
        new Promise((resolve) => signal.addEventListener('abort', () => resolve({ samples: 0, agreement: 0, maxAbsDiff: 0, activeP50Ms: 0, candidateP50Ms: 0 }), { once: true })),
    };
    rig = await rigWith(dir.path, { runner: { shadow: waiting } });
    const a1 = await rig.assignment({ name: 'clf', version: '1.0.0', bytes: v1 });
    await rig.apply(a1);
    const before = rig.events.length;
    rig.submit({ ...(await rig.assignment({ name: 'clf', version: '2.0.0', bytes: v2 })), shadow: { sampleRate: 1, maxDurationSec: 3600 } });
    await eventually(() => rig!.events.slice(before).some((e) => e.phase === 'shadow'), 'the shadow phase to start');
    rig.submit(a1);
    await rig.runner.idle();
    expect(phases(rig.events.slice(before))).toEqual(['downloading', 'downloading', 'verifying', 'loading', 'health-check', 'shadow']);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
    expect(rig.runtime.loaded.size).toBe(1);
    expect(rig.store.listFailures()).toEqual([]);
  });
});
