import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goldenInputs, signManifest, typedArrayFor, type ModelAssignment } from '@edgefleet/shared';
import { decodeModel, readSignature } from '@edgefleet/shared/onnx';
import { fileSize, modelPath } from '../src/models/model-files.js';
import { startDeploymentRig, type DeploymentRig } from './support/deployment-rig.js';
import { desired, mlp, sha256Of, type AssignmentOptions } from './support/manifests.js';
import { eventually, tempDir } from './support/temp.js';

describe('deployment runner on real parts', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let rig: DeploymentRig;
  let stateChanges = 0;
  const v1 = mlp(1);
  const v2 = mlp(2);
  const v3 = mlp(3);

  const assignment = (version: string, bytes: Uint8Array, extra: Partial<AssignmentOptions> = {}) =>
    rig.assignment({ name: 'clf', version, bytes, rolloutId: `r-${version}`, ...extra });

  beforeAll(async () => {
    dir = await tempDir('deploy');
    rig = await startDeploymentRig({
      stateDir: dir.path,
      scratchDir: dir.path,
      creds: { username: 'dev-deploy', password: 'secret-1' },
      retryDelayMs: 30,
      onStateChange: () => stateChanges++,
    });
    for (const bytes of [v1, v2, v3]) rig.server.files.set(sha256Of(bytes), bytes);
  });

  afterAll(async () => {
    await rig?.stop();
    await dir?.remove();
  });

  it('installs a verified model through every phase and serves it', async () => {
    const got = await rig.apply(await assignment('1.0.0', v1));
    expect(got.map((e) => e.phase)).toEqual(['downloading', 'downloading', 'verifying', 'loading', 'health-check', 'active']);
    expect(got.every((e) => e.rolloutId === 'r-1.0.0' && e.model === 'clf' && e.version === '1.0.0')).toBe(true);
    expect(got[0]!.progress).toBe(0);
    expect(got[1]!.progress).toBe(1);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
    expect(rig.store.listModels().filter((m) => m.active).map((m) => m.version)).toEqual(['1.0.0']);
    expect(rig.store.desiredVersion()).toBe(1);
    expect(stateChanges).toBeGreaterThan(0);
    expect(await fileSize(modelPath(dir.path, sha256Of(v1)))).toBe(v1.byteLength);

    const [input] = goldenInputs(readSignature(decodeModel(v1)).inputs);
    const out = await rig.table.get('clf')!.infer([{ name: input!.name, datatype: input!.datatype, shape: input!.shape, data: typedArrayFor(input!.datatype, input!.values) }]);
    expect(out[0]!.name).toBe('probs');
  });

  it('never activates a model whose golden vector does not match; keeps the previous one and deletes the file', async () => {
    const bad = await assignment('2.0.0', v2, { goldenOffset: 0.5 });
    const got = await rig.apply(bad);
    const failed = got.at(-1)!;
    expect(got.map((e) => e.phase)).toEqual(['downloading', 'downloading', 'verifying', 'loading', 'health-check', 'failed']);
    expect(failed).toMatchObject({ code: 'INVALID_MODEL', keptVersion: '1.0.0', version: '2.0.0', rolloutId: 'r-2.0.0' });
    expect(failed.message).toMatch(/golden vector check/);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
    expect(rig.runtime.loaded.size).toBe(1);
    expect(await fileSize(modelPath(dir.path, sha256Of(v2)))).toBeUndefined();
    expect(rig.store.listModels().map((m) => [m.version, m.active])).toEqual([['1.0.0', true]]);

    // The same desired document again (as after a reconnect): not retried, nothing downloaded.
    const requests = rig.server.requests.length;
    rig.runner.submit(desired(rig.nextVersion() - 1, bad));
    await rig.runner.idle();
    expect(rig.events.at(-1)).toBe(failed);
    expect(rig.server.requests.length).toBe(requests);
  });

  it('does not try a refused version again when only the desired version moves; another rollout of it, or one outside a rollout, does', async () => {
    const requests = rig.server.requests.length;
    // The same assignment (same digest, same rollout) in the next document, as when another model's rollout writes it.
    expect(await rig.apply(await assignment('2.0.0', v2, { goldenOffset: 0.5 }))).toEqual([]);
    expect(rig.server.requests.length).toBe(requests);
    expect(rig.store.listFailures()).toMatchObject([{ name: 'clf', version: '2.0.0', rolloutId: 'r-2.0.0', code: 'INVALID_MODEL', retryable: false }]);

    const retried = await rig.apply(await assignment('2.0.0', v2, { goldenOffset: 0.5, rolloutId: 'r-2.0.0-again' }));
    expect(retried.at(-1)).toMatchObject({ phase: 'failed', code: 'INVALID_MODEL', rolloutId: 'r-2.0.0-again', keptVersion: '1.0.0' });
    expect(rig.server.requests.length).toBeGreaterThan(requests);
    expect(rig.store.listFailures()).toMatchObject([{ rolloutId: 'r-2.0.0-again', attempts: 2 }]);

    // Outside a rollout a new desired version is all there is to tell a retry by.
    const outside = await assignment('2.0.0', v2, { goldenOffset: 0.5, rolloutId: undefined });
    for (let i = 0; i < 2; i++) expect((await rig.apply(outside)).at(-1)).toMatchObject({ phase: 'failed', code: 'INVALID_MODEL' });
    expect(rig.store.listFailures()).toEqual([expect.not.objectContaining({ rolloutId: expect.anything() })]);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
  });

  it('refuses a tampered manifest before downloading anything', async () => {
    const good = await assignment('3.0.0', v3);
    const tampered: ModelAssignment = { ...good, manifest: { ...good.manifest, manifest: { ...good.manifest.manifest, version: '3.0.1' } } };
    const requests = rig.server.requests.length;
    const got = await rig.apply(tampered);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ phase: 'failed', code: 'INVALID_MODEL', keptVersion: '1.0.0', version: '3.0.1' });
    expect(got[0]!.message).toMatch(/signature/);
    expect(rig.server.requests.length).toBe(requests);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
  });

  it('refuses a file whose sha256 is not the signed one', async () => {
    const claimed = 'e'.repeat(64);
    rig.server.files.set(claimed, v3);
    const got = await rig.apply(await assignment('3.1.0', v3, { claimSha256: claimed }));
    expect(got.at(-1)).toMatchObject({ phase: 'failed', code: 'INVALID_MODEL', keptVersion: '1.0.0' });
    expect(got.at(-1)!.message).toMatch(/sha256/);
    expect(got.map((e) => e.phase)).not.toContain('loading');
    expect(await fileSize(modelPath(dir.path, claimed))).toBeUndefined();
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
  });

  it('refuses a signed file that onnxruntime cannot load', async () => {
    const junk = new TextEncoder().encode('this is not an onnx model, although its digest is signed');
    rig.server.files.set(sha256Of(junk), junk);
    const good = await assignment('3.2.0', v3);
    const manifest = { ...good.manifest.manifest, sha256: sha256Of(junk), size: junk.byteLength };
    const got = await rig.apply({ rolloutId: 'r-junk', manifest: signManifest(manifest, rig.keys.privateKeyPem) });
    expect(got.map((e) => e.phase)).toEqual(['downloading', 'downloading', 'verifying', 'loading', 'failed']);
    expect(got.at(-1)).toMatchObject({ code: 'INVALID_MODEL', keptVersion: '1.0.0' });
    expect(await fileSize(modelPath(dir.path, sha256Of(junk)))).toBeUndefined();
    expect(rig.table.get('clf')?.version).toBe('1.0.0');
  });

  it('activates a good new version and closes the previous one', async () => {
    const got = await rig.apply(await assignment('4.0.0', v3));
    expect(got.at(-1)).toMatchObject({ phase: 'active', version: '4.0.0' });
    expect(rig.table.get('clf')?.version).toBe('4.0.0');
    expect(rig.runtime.loaded.size).toBe(1);
    expect(rig.store.listModels().map((m) => [m.version, m.active])).toEqual([
      ['1.0.0', false],
      ['4.0.0', true],
    ]);
  });

  it('retries an assignment that failed for a retryable reason, after a delay', async () => {
    rig.server.unavailable = 2; // first attempt and its one in-download retry
    const got = await rig.apply(await assignment('4.1.0', v2));
    expect(got.at(-1)).toMatchObject({ phase: 'failed', code: 'UNAVAILABLE', keptVersion: '4.0.0' });
    await eventually(() => rig.events.at(-1)?.phase === 'active' && rig.events.at(-1)?.version === '4.1.0', 'retry to activate 4.1.0');
    await rig.runner.idle();
    expect(rig.table.get('clf')?.version).toBe('4.1.0');
    expect(rig.store.listFailures()).toEqual([]);
  });

  it('coalesces desired documents that arrive while one is being applied', async () => {
    const a = await assignment('5.0.0', v1);
    const b = await assignment('5.1.0', v3);
    const c = await assignment('5.2.0', v2);
    const before = rig.events.length;
    rig.submit(a);
    rig.submit(b);
    rig.submit(c);
    await rig.runner.idle();
    const applied = rig.events.slice(before).filter((e) => e.phase === 'active').map((e) => e.version);
    // 5.0.0 was already on its way when the newer documents came; it is not switched to, only the newest is.
    expect(applied).toEqual(['5.2.0']);
    expect(rig.runtime.loaded.size).toBe(1);
    expect(rig.store.desiredVersion()).toBe(rig.nextVersion() - 1);
  });

  it('removes a model that is no longer desired', async () => {
    const got = await rig.apply();
    expect(got).toMatchObject([{ phase: 'removed', model: 'clf', version: '5.2.0' }]);
    expect(rig.table.list()).toEqual([]);
    expect(rig.runtime.loaded.size).toBe(0);
    expect(rig.store.listModels()).toEqual([]);
  });
});
