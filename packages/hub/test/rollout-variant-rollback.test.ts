import type { ModelAssignment, ModelVersion, Rollout } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { beforeAll, describe, expect, it } from 'vitest';
import { eventually, useTestHub } from './hub-harness.js';
import { installedOf, rolloutTestApi, type SimDevice } from './rollout-devices.js';
import { seedVariants } from './seed-variants.js';

/** A rollback returns a device to the variant it ran, even after its desired document has moved past it. */
describe('rollback to a built variant', () => {
  const t = useTestHub();
  const { devices, created, until, rowOf } = rolloutTestApi(t);
  let v1: ModelVersion;

  const upload = async (version: string, hidden: number) => {
    const res = await t.api<ModelVersion>('POST', `/api/v1/models/clf/versions?version=${version}`, buildMlp({ inputSize: 4, hidden: [hidden], outputSize: 2 }));
    expect(res.status).toBe(201);
    return res.body;
  };
  const download = async (d: SimDevice, sha256: string) => {
    const res = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/${sha256}`, { headers: { authorization: `Basic ${Buffer.from(`${d.id}:${d.creds.secret}`).toString('base64')}` } });
    await res.arrayBuffer();
    return res.status;
  };

  beforeAll(async () => {
    v1 = await upload('1', 4);
  });

  it('finds the int8-static manifest of v1 in the rollout that gave it, when v2 was superseded by v3 before install and v3 is rolled back', async () => {
    const int8 = seedVariants(t, v1, [{ profile: 'int8-static', latencyRatio: 0.45 }])['int8-static']!;
    const [device] = (await devices(1)) as [SimDevice];

    // v1 as int8-static (pinned), installed and active.
    const first = await created({ model: 'clf', version: '1', target: { deviceIds: [device.id] }, profile: 'int8-static' });
    const onV1 = await device.assigned('clf', first.id);
    expect(onV1.manifest).toEqual(int8);
    await device.switchTo(onV1);
    await until(first.id, (r) => r.state === 'succeeded', 'v1 int8-static active');

    // v2 is assigned but never installed; v3 replaces it in the desired document.
    await upload('2', 5);
    await upload('3', 6);
    const second = await created({ model: 'clf', version: '2', target: { deviceIds: [device.id] } });
    await device.assigned('clf', second.id);
    const third = await created({ model: 'clf', version: '3', target: { deviceIds: [device.id] } });
    const onV3 = await device.assigned('clf', third.id);
    expect(rowOf(third, device.id).from).toEqual({ model: 'clf', version: '1', profile: 'int8-static', sha256: int8.manifest.sha256 });

    // v3 fails on the device; the rollback sends it back to the variant it ran.
    await device.event(onV3, 'failed', { code: 'INVALID_MODEL', message: 'v3 does not load' });
    await until(third.id, (r) => rowOf(r, device.id).state === 'failed', 'v3 failed on the device');
    const rolled = await t.api<Rollout>('POST', `/api/v1/rollouts/${third.id}/rollback`);
    expect(rolled.status).toBe(200);
    // Its last report already shows v1 int8-static active: back at once.
    expect(rowOf(rolled.body, device.id)).toMatchObject({ state: 'rolled-back', error: 'INVALID_MODEL: v3 does not load' });
    const back = await device.assigned('clf', third.id, (a: ModelAssignment) => a.manifest.manifest.version === '1');
    expect(back).toEqual({ rolloutId: third.id, manifest: int8, maxDeferSec: 0 });

    // The variant it returned to stays its to fetch; the fp32 file of v1, never given to it, does not open.
    await device.report([installedOf(back, true)]);
    await eventually(async () => (await t.api<{ models: unknown[] }>('GET', `/api/v1/devices/${device.id}`)).body.models.length === 1, 'report stored');
    expect(await download(device, int8.manifest.sha256)).toBe(200);
    expect(await download(device, v1.sha256)).toBe(404);
    await device.close();
  });
});
