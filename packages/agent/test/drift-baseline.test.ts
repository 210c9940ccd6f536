import { readdir, readFile, writeFile } from 'node:fs/promises';
import { verifyManifest } from '@edgefleet/shared';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreActiveModels } from '../src/deployment/restore.js';
import { baselinePath, baselineProblem, deliverBaseline } from '../src/drift/baseline-delivery.js';
import { modelsDir, removeFile } from '../src/models/model-files.js';
import { startDeploymentRig, type DeploymentRig } from './support/deployment-rig.js';
import { baselineArtifact, baselineFor, withDrift } from './support/drift-manifests.js';
import { mlp, sha256Of } from './support/manifests.js';
import { silentLogger, tempDir } from './support/temp.js';

const creds = { username: 'dev-drift', password: 'secret-d' };

describe('drift baseline delivery with the model', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let rig: DeploymentRig;
  const versions = [1, 2, 3, 4, 5, 6].map((seed) => mlp(seed));
  // Each test its own reference row count, so each baseline has its own digest.

  const deploy = async (version: number, entry: Parameters<typeof withDrift>[1]) => {
    const bytes = versions[version - 1]!;
    const a = withDrift(await rig.assignment({ name: 'scorer', version: String(version), bytes }), entry, rig.keys.privateKeyPem);
    return { a, events: await rig.apply(a) };
  };
  const artifactRequests = (sha256: string) => rig.server.requests.filter((r) => r.path === `/api/v1/artifacts/${sha256}`);

  beforeAll(async () => {
    dir = await tempDir('drift-baseline');
    rig = await startDeploymentRig({ stateDir: dir.path, scratchDir: dir.path, creds, retryDelayMs: 30 });
    for (const bytes of versions) rig.server.files.set(sha256Of(bytes), bytes);
  });
  afterAll(async () => {
    await rig?.stop();
    await dir?.remove();
  });

  it('fetches a baseline sent by reference with the device credentials, checks it, keeps it beside the model and loads the model with it', async () => {
    const baseline = baselineFor(versions[0]!, 200);
    const { bytes, entry } = baselineArtifact(baseline, false);
    rig.server.files.set(entry.sha256, bytes);
    const { a, events } = await deploy(1, entry);
    expect(events.at(-1)).toMatchObject({ phase: 'active', version: '1' });
    expect(rig.table.get('scorer')?.drift).toEqual(baseline);
    const fetched = artifactRequests(entry.sha256);
    expect(fetched).toHaveLength(1);
    expect(fetched[0]!.authorization).toBe(`Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`);
    expect(await readdir(modelsDir(dir.path))).toContain(`${entry.sha256}.drift.json`);

    // At a restart the copy on disk is used, without the hub; once it is gone drift is off, nothing fails.
    const manifest = verifyManifest(a.manifest, rig.keys.publicKeyPem);
    expect(await deliverBaseline(manifest, { stateDir: dir.path, logger: silentLogger })).toEqual(baseline);
    await removeFile(baselinePath(dir.path, entry.sha256));
    expect(await deliverBaseline(manifest, { stateDir: dir.path, logger: silentLogger })).toBeUndefined();
  });

  it('uses an inline baseline as it is signed, with no download', async () => {
    const baseline = baselineFor(versions[1]!, 201);
    const { entry } = baselineArtifact(baseline, true);
    const { events } = await deploy(2, entry);
    expect(events.at(-1)).toMatchObject({ phase: 'active', version: '2' });
    expect(rig.table.get('scorer')?.drift).toEqual(baseline);
    expect(artifactRequests(entry.sha256)).toHaveLength(0);
  });

  it('a tampered baseline (sha256 mismatch) turns drift off for that version; the model still deploys', async () => {
    const { bytes, entry } = baselineArtifact(baselineFor(versions[2]!, 202), false);
    const tampered = Uint8Array.from(bytes);
    tampered[tampered.length - 2] = tampered[tampered.length - 2] === 0x30 ? 0x31 : 0x30;
    rig.server.files.set(entry.sha256, tampered);
    const { events } = await deploy(3, entry);
    expect(events.at(-1)).toMatchObject({ phase: 'active', version: '3' });
    expect(rig.table.get('scorer')?.version).toBe('3');
    expect(rig.table.get('scorer')?.drift).toBeUndefined();
    expect(await readdir(modelsDir(dir.path))).not.toContain(`${entry.sha256}.drift.json`);
  });

  it('a truncated baseline turns drift off for that version; the model still deploys', async () => {
    const { bytes, entry } = baselineArtifact(baselineFor(versions[3]!, 203), false);
    rig.server.files.set(entry.sha256, bytes.subarray(0, bytes.byteLength - 100));
    const { events } = await deploy(4, entry);
    expect(events.at(-1)).toMatchObject({ phase: 'active', version: '4' });
    expect(rig.table.get('scorer')?.drift).toBeUndefined();
  });

  it('a signed baseline that does not fit its extraction or its model turns drift off; the model still deploys', async () => {
    const baseline = baselineFor(versions[4]!, 204);
    const renamed = { ...baseline, features: baseline.features.map((f, i) => (i === 0 ? { ...f, name: 'elsewhere' } : f)) };
    const { entry } = baselineArtifact(renamed, true);
    const { events } = await deploy(5, entry);
    expect(events.at(-1)).toMatchObject({ phase: 'active', version: '5' });
    expect(rig.table.get('scorer')?.drift).toBeUndefined();
  });

  it('a tampered disk copy at restore turns drift off for that version, names the file, and the model is still served', async () => {
    const baseline = baselineFor(versions[5]!, 205);
    const { bytes, entry } = baselineArtifact(baseline, false);
    rig.server.files.set(entry.sha256, bytes);
    const { events } = await deploy(6, entry);
    expect(events.at(-1)).toMatchObject({ phase: 'active', version: '6' });
    expect(rig.table.get('scorer')?.drift).toEqual(baseline);

    // Same size, one byte changed: only the digest of the bytes read tells.
    const path = baselinePath(dir.path, entry.sha256);
    const onDisk = await readFile(path);
    onDisk[onDisk.length - 2] = onDisk[onDisk.length - 2] === 0x30 ? 0x31 : 0x30;
    await writeFile(path, onDisk);
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    await restoreActiveModels({ store: rig.store, runtime: rig.runtime, table: rig.table, logger, stateDir: dir.path });
    const restored = rig.table.get('scorer');
    expect(restored?.version).toBe('6');
    expect(restored?.drift).toBeUndefined();
    const input = restored!.inputs[0]!;
    const served = await restored!.infer([{ name: input.name, datatype: 'FP32', shape: [1, 4], data: new Float32Array(4).fill(0.5) }]);
    expect(served.length).toBeGreaterThan(0);
    const warning = lines.map((l) => JSON.parse(l) as { msg: string; file?: string }).find((l) => l.file === path);
    expect(warning?.msg).toContain(path);
    expect(warning?.msg).toMatch(/signed sha256/);
    expect(rig.server.requests.filter((r) => r.path === `/api/v1/artifacts/${entry.sha256}`)).toHaveLength(1); // restore never fetches
  });
});

describe('baselineProblem', () => {
  const bytes = mlp(9);
  const baseline = baselineFor(bytes);
  const specs = { inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, 4] }], outputs: [{ name: 'y', datatype: 'FP32' as const, shape: [-1, 3] }] };
  const extraction = baseline.extraction!;
  const inputName = extraction.inputs[0]!.tensor;
  const outputName = extraction.outputs[0]!.tensor;
  const fit = { inputs: [{ ...specs.inputs[0]!, name: inputName }], outputs: [{ ...specs.outputs[0]!, name: outputName }] };

  it('accepts a baseline whose features are its extraction and whose tensors the model has', () => {
    expect(baselineProblem(baseline, fit)).toBeNull();
  });

  it('names what is wrong', () => {
    expect(baselineProblem({ features: [] }, fit)).toMatch(/does not match the DriftBaseline schema/);
    expect(baselineProblem({ ...baseline, extraction: undefined }, fit)).toMatch(/has no extraction/);
    expect(baselineProblem({ ...baseline, features: baseline.features.slice(1) }, fit)).toMatch(/its extraction yields 4 features but it lists 3/);
    expect(baselineProblem(baseline, { ...fit, inputs: [{ ...fit.inputs[0]!, name: 'other' }] })).toMatch(new RegExp(`reads inputs tensor "${inputName}", which the model does not have \\(other\\)`));
    const reference = { ...baseline.reference, counts: baseline.reference.counts.slice(1) };
    expect(baselineProblem({ ...baseline, reference }, fit)).toMatch(/its reference summary does not fit it/);
  });
});
