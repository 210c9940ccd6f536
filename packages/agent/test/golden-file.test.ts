import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKeyPair, type ModelAssignment } from '@edgefleet/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeploymentRunner, type DeploymentRunner } from '../src/deployment/runner.js';
import type { DeploymentEventBody } from '../src/deployment/steps.js';
import { createModelRuntime } from '../src/inference/model-runtime.js';
import { createModelTable } from '../src/inference/model-table.js';
import type { ModelTable } from '../src/inference/types.js';
import { createDownloader } from '../src/models/download.js';
import { modelsDir } from '../src/models/model-files.js';
import { createAgentStore, type AgentStore } from '../src/store/agent-store.js';
import { startArtifactServer, type ArtifactServer } from './support/artifact-server.js';
import { assignmentFor, desired, imageModel, sha256Of } from './support/manifests.js';
import { silentLogger, tempDir } from './support/temp.js';
import { trackingRuntime } from './support/tracking-runtime.js';

const creds = { username: 'dev-golden', password: 'secret-g' };

describe('deployment of a model whose golden vector is a golden file', () => {
  const keys = generateSigningKeyPair();
  let dir: { path: string; remove: () => Promise<void> };
  let server: ArtifactServer;
  let store: AgentStore;
  let runtime: ReturnType<typeof trackingRuntime>;
  let table: ModelTable;
  let runner: DeploymentRunner;
  const events: DeploymentEventBody[] = [];
  let nextVersion = 1;
  const v1 = imageModel(1);
  const v2 = imageModel(2);

  const assignment = (version: string, bytes: Uint8Array, goldenOffset = 0) =>
    assignmentFor({ name: 'detector', version, bytes, privateKeyPem: keys.privateKeyPem, runtime, scratchDir: dir.path, goldenOffset, goldenFileInto: server.files });
  async function apply(a: ModelAssignment): Promise<DeploymentEventBody[]> {
    const before = events.length;
    runner.submit(desired(nextVersion++, a));
    await runner.idle();
    return events.slice(before);
  }

  beforeAll(async () => {
    dir = await tempDir('golden');
    server = await startArtifactServer(creds);
    for (const bytes of [v1, v2]) server.files.set(sha256Of(bytes), bytes);
    store = createAgentStore({ path: join(dir.path, 'agent.db'), logger: silentLogger });
    store.start();
    runtime = trackingRuntime(createModelRuntime({ workers: 1, threads: 1, logger: silentLogger }));
    table = createModelTable();
    runner = createDeploymentRunner({
      stateDir: dir.path,
      apiUrl: server.apiUrl,
      auth: creds,
      hubPublicKey: keys.publicKeyPem,
      store,
      runtime,
      table,
      download: createDownloader({ logger: silentLogger, retries: 1, retryDelayMs: 5 }),
      publishEvent: (e) => events.push(e),
      onStateChange: () => {},
      logger: silentLogger,
      retryDelayMs: () => 30,
    });
    runner.start();
  });
  afterAll(async () => {
    await runner.stop();
    for (const m of table.list()) await m.close();
    await runtime.stop();
    store.stop();
    await server.close();
    await dir.remove();
  });

  it('fetches the golden file with the device credentials, checks the [1,3,640,640] model against it and activates it', async () => {
    const a = await assignment('1', v1);
    const ref = a.manifest.manifest.golden.ref!;
    expect(a.manifest.manifest.golden.inputs).toEqual([]);
    expect(JSON.stringify(a).length).toBeLessThan(8 * 1024);

    const got = await apply(a);
    expect(got.at(-1)).toMatchObject({ phase: 'active', version: '1' });
    expect(got.map((e) => e.phase)).toContain('health-check');
    expect(table.get('detector')?.version).toBe('1');
    const fetched = server.requests.filter((r) => r.path === `/api/v1/artifacts/${ref.sha256}`);
    expect(fetched).toHaveLength(1);
    expect(fetched[0]!.authorization).toBe(`Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`);
    // Needed for the check only: not kept beside the models.
    expect((await readdir(modelsDir(dir.path))).filter((f) => f.includes(ref.sha256))).toEqual([]);
  });

  it('never activates a model whose golden file outputs do not match; the previous version stays', async () => {
    const got = await apply(await assignment('2', v2, 0.5));
    expect(got.at(-1)).toMatchObject({ phase: 'failed', code: 'INVALID_MODEL', keptVersion: '1' });
    expect(got.at(-1)!.message).toMatch(/golden vector check of detector@2 failed: output feat\[0\]/);
    expect(table.get('detector')?.version).toBe('1');
    expect(runtime.loaded.size).toBe(1);
  });
});
