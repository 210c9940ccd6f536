import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSigningKeyPair, signManifest, type Manifest } from '@edgefleet/shared';
import { rebuildFromModelFiles } from '../src/deployment/restore.js';
import { ensureModelsDir, modelPath, writeManifestSidecar } from '../src/models/model-files.js';
import { createAgentStore } from '../src/store/agent-store.js';
import { mlp, sha256Of } from './support/manifests.js';
import { silentLogger, tempDir } from './support/temp.js';

const dirs: Array<{ remove: () => Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => d.remove()));
});

const manifestOf = (model: string, version: string, bytes: Uint8Array): Manifest => ({
  v: 1,
  model,
  version,
  profile: 'fp32',
  sha256: sha256Of(bytes),
  size: bytes.byteLength,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }],
  golden: { inputs: [], outputs: [], tolerance: { atol: 1e-4 } },
  createdAt: '2026-01-01T00:00:00Z',
});

describe('rebuilding the model table from kept files after agent.db was lost', () => {
  it('puts back models whose signed manifest verifies with the pinned key and whose file is there; the last activated is active', async () => {
    const dir = await tempDir('rebuild');
    dirs.push(dir);
    await ensureModelsDir(dir.path);
    const hub = generateSigningKeyPair();
    const stranger = generateSigningKeyPair();
    const keep = async (bytes: Uint8Array, manifest: Manifest, activatedAt: number, key = hub.privateKeyPem, withFile = true) => {
      if (withFile) await writeFile(modelPath(dir.path, manifest.sha256), bytes);
      await writeManifestSidecar(dir.path, { activatedAt, signed: signManifest(manifest, key) });
    };
    const [v1, v2, forged, gone] = [mlp(1), mlp(2), mlp(3), mlp(4)];
    await keep(v1, manifestOf('clf', '1.0.0', v1), 100);
    await keep(v2, manifestOf('clf', '2.0.0', v2), 200);
    await keep(forged, manifestOf('forged', '1.0.0', forged), 300, stranger.privateKeyPem);
    await keep(gone, manifestOf('gone', '1.0.0', gone), 400, hub.privateKeyPem, false);

    const store = createAgentStore({ path: join(dir.path, 'agent.db'), logger: silentLogger });
    store.start();
    expect(await rebuildFromModelFiles({ stateDir: dir.path, hubPublicKey: hub.publicKeyPem, store, logger: silentLogger })).toBe(2);
    expect(store.listModels().map((m) => [m.name, m.version, m.active, m.path])).toEqual([
      ['clf', '1.0.0', false, modelPath(dir.path, sha256Of(v1))],
      ['clf', '2.0.0', true, modelPath(dir.path, sha256Of(v2))],
    ]);
    store.stop();
  });
});
