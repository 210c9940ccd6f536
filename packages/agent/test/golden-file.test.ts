import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsDir } from '../src/models/model-files.js';
import { startDeploymentRig, type DeploymentRig } from './support/deployment-rig.js';
import { imageModel, sha256Of } from './support/manifests.js';
import { tempDir } from './support/temp.js';

const creds = { username: 'dev-golden', password: 'secret-g' };

describe('deployment of a model whose golden vector is a golden file', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let rig: DeploymentRig;
  const v1 = imageModel(1);
  const v2 = imageModel(2);

  const assignment = (version: string, bytes: Uint8Array, goldenOffset = 0) =>
    rig.assignment({ name: 'detector', version, bytes, goldenOffset, goldenFileInto: rig.server.files });

  beforeAll(async () => {
    dir = await tempDir('golden');
    rig = await startDeploymentRig({ stateDir: dir.path, scratchDir: dir.path, creds, retryDelayMs: 30 });
    for (const bytes of [v1, v2]) rig.server.files.set(sha256Of(bytes), bytes);
  });
  afterAll(async () => {
    await rig?.stop();
    await dir?.remove();
  });

  it('fetches the golden file with the device credentials, checks the [1,3,640,640] model against it and activates it', async () => {
    const a = await assignment('1', v1);
    const ref = a.manifest.manifest.golden.ref!;
    expect(a.manifest.manifest.golden.inputs).toEqual([]);
    expect(JSON.stringify(a).length).toBeLessThan(8 * 1024);

    const got = await rig.apply(a);
    expect(got.at(-1)).toMatchObject({ phase: 'active', version: '1' });
    expect(got.map((e) => e.phase)).toContain('health-check');
    expect(rig.table.get('detector')?.version).toBe('1');
    const fetched = rig.server.requests.filter((r) => r.path === `/api/v1/artifacts/${ref.sha256}`);
    expect(fetched).toHaveLength(1);
    expect(fetched[0]!.authorization).toBe(`Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`);
    // Needed for the check only: not kept beside the models.
    expect((await readdir(modelsDir(dir.path))).filter((f) => f.includes(ref.sha256))).toEqual([]);
  });

  it('never activates a model whose golden file outputs do not match; the previous version stays', async () => {
    const got = await rig.apply(await assignment('2', v2, 0.5));
    expect(got.at(-1)).toMatchObject({ phase: 'failed', code: 'INVALID_MODEL', keptVersion: '1' });
    expect(got.at(-1)!.message).toMatch(/golden vector check of detector@2 failed: output feat\[0\]/);
    expect(rig.table.get('detector')?.version).toBe('1');
    expect(rig.runtime.loaded.size).toBe(1);
  });
});
