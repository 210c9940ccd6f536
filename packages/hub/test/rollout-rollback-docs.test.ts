import type { ModelAssignment, ModelVersion, Rollout } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { beforeAll, describe, expect, it } from 'vitest';
import { eventually, useTestHub } from './hub-harness.js';
import { rolloutTestApi, type SimDevice } from './rollout-devices.js';

/** The desired documents a hub writes to take devices back: what they carry, and what a rollback that cannot go back says. */
describe('rollback and abort documents over MQTT', () => {
  const t = useTestHub();
  let v1: ModelVersion;

  beforeAll(async () => {
    v1 = (await t.api<ModelVersion>('POST', '/api/v1/models/clf/versions?version=1', buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 }))).body;
    await t.api<ModelVersion>('POST', '/api/v1/models/clf/versions?version=2', buildMlp({ inputSize: 4, hidden: [3], outputSize: 2 }));
  });

  const { devices, created, until, rowOf, onV1 } = rolloutTestApi(t);
  const isV1 = (a: ModelAssignment) => a.manifest.manifest.version === '1';

  it('sends devices back with maxDeferSec 0 on a rollback and on an abort: a local update lock must not hold a safety action', async () => {
    const [switched, unswitched] = (await devices(2)) as [SimDevice, SimDevice];
    const old = await onV1([switched, unswitched]);

    const rolledBack = await created({ model: 'clf', version: '2', target: { deviceIds: [switched.id] }, maxDeferSec: 120 });
    const forward = await switched.assigned('clf', rolledBack.id);
    expect(forward.maxDeferSec).toBe(120);
    await switched.switchTo(forward, old[0]);
    await until(rolledBack.id, (x) => x.state === 'succeeded', 'v2 on the first device');
    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${rolledBack.id}/rollback`)).status).toBe(200);
    const back = await switched.assigned('clf', rolledBack.id, isV1);
    expect(back).toEqual({ rolloutId: rolledBack.id, manifest: v1.manifest, maxDeferSec: 0 });

    const aborted = await created({ model: 'clf', version: '2', target: { deviceIds: [unswitched.id] }, maxDeferSec: 120 });
    await unswitched.event(await unswitched.assigned('clf', aborted.id), 'downloading', { progress: 0.5 });
    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${aborted.id}/abort`)).status).toBe(200);
    expect(await unswitched.assigned('clf', aborted.id, isV1)).toEqual({ rolloutId: aborted.id, manifest: v1.manifest, maxDeferSec: 0 });
    await Promise.all([switched, unswitched].map((s) => s.close()));
  });

  it('ends a rollback with a reason that names the devices it could not return for want of a manifest', async () => {
    const [known, unknown] = (await devices(2)) as [SimDevice, SimDevice];
    const [old] = await onV1([known]);
    // The other runs a version of clf this hub never had: nothing to send it back to.
    const stray = { name: 'clf', version: '0', sha256: 'f'.repeat(64), profile: 'fp32', active: true };
    await unknown.report([stray]);
    await eventually(async () => (await t.api<{ models: Array<{ version: string }> }>('GET', `/api/v1/devices/${unknown.id}`)).body.models.some((m) => m.version === '0'), 'clf@0 reported');

    const id = (await created({ model: 'clf', version: '2', target: { deviceIds: [known.id, unknown.id] } })).id;
    const given = await Promise.all([known, unknown].map((s) => s.assigned('clf', id)));
    await known.switchTo(given[0]!, old);
    await unknown.event(given[1]!, 'active');
    await unknown.report([{ ...stray, active: false }, { name: 'clf', version: '2', sha256: given[1]!.manifest.manifest.sha256, profile: given[1]!.manifest.manifest.profile, active: true }]);
    await until(id, (x) => x.state === 'succeeded', 'v2 on both');

    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/rollback`)).status).toBe(200);
    await known.switchTo(await known.assigned('clf', id, isV1), given[0]);
    const r = await until(id, (x) => x.state === 'rolled-back', 'rollback ended');
    expect(r.counts).toEqual({ 'rolled-back': 1, failed: 1 });
    expect(rowOf(r, unknown.id)).toMatchObject({ state: 'failed', error: 'cannot roll back: no manifest of clf@0 is known' });
    expect(r.reason!.message).toBe(
      'rolled back by an operator; 1 of 2 devices could not be rolled back: no manifest of its previous version is known, so it keeps the new version (see the device errors)',
    );
    // Its assignment stays the new version: nothing was sent that it could not install.
    expect(unknown.assignment('clf')!.manifest.manifest.version).toBe('2');
    await Promise.all([known, unknown].map((s) => s.close()));
  });

  it('does not call a device cancelled by an abort when there is no manifest to send it back to', async () => {
    const [d] = (await devices(1)) as [SimDevice];
    await d.report([{ name: 'clf', version: '0', sha256: 'e'.repeat(64), profile: 'fp32', active: true }]);
    await eventually(async () => (await t.api<{ models: Array<{ version: string }> }>('GET', `/api/v1/devices/${d.id}`)).body.models.some((m) => m.version === '0'), 'clf@0 reported');
    const id = (await created({ model: 'clf', version: '2', target: { deviceIds: [d.id] } })).id;
    await d.event(await d.assigned('clf', id), 'downloading', { progress: 0.5 });
    await until(id, (x) => rowOf(x, d.id).state === 'downloading', 'downloading');
    const before = d.latest()!.version;

    const r = (await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/abort`)).body;
    expect(r.state).toBe('aborted');
    expect(rowOf(r, d.id)).toMatchObject({ state: 'downloading', error: 'not cancelled: no manifest of clf@0 is known to send it back to, so it keeps this assignment' });
    expect(d.latest()!.version).toBe(before);
    await d.close();
  });
});
