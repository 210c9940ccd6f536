import { execFileSync } from 'node:child_process';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKeyPair, type Manifest } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { createDeploymentRunner, type DeploymentRunner } from '../src/deployment/runner.js';
import type { DeploymentEventBody } from '../src/deployment/steps.js';
import { createModelRuntime } from '../src/inference/model-runtime.js';
import { createModelTable } from '../src/inference/model-table.js';
import type { ModelRuntime, ModelTable } from '../src/inference/types.js';
import { freeBytes } from '../src/models/disk-space.js';
import { createDownloader } from '../src/models/download.js';
import { fetchModelFile } from '../src/models/fetch-model.js';
import { modelPath, modelsDir } from '../src/models/model-files.js';
import { createAgentStore, type AgentStore } from '../src/store/agent-store.js';
import { startArtifactServer, type ArtifactServer } from './support/artifact-server.js';
import { assignmentFor, desired, sha256Of } from './support/manifests.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

// A real small file system: a 2 MiB tmpfs mounted for this test (we run as root here and in CI).

const creds = { username: 'dev-disk', password: 'secret-disk' };
const RESERVE = 64 * 1024;
/** About 270 KB each: several fit on the 2 MiB disk, none fits beside the filler. */
const model = (seed: number) => buildMlp({ inputSize: 128, hidden: [512], outputSize: 4, seed });

describe('deployment on a full disk (real tmpfs)', () => {
  const keys = generateSigningKeyPair();
  const logLines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
  let scratch: { path: string; remove: () => Promise<void> };
  let mount: { path: string; remove: () => Promise<void> };
  let mounted = false;
  let server: ArtifactServer;
  let store: AgentStore;
  let runtime: ModelRuntime;
  let table: ModelTable;
  let runner: DeploymentRunner;
  const events: DeploymentEventBody[] = [];
  const filler = () => join(mount.path, 'filler');
  let nextVersion = 1;

  /** Writes a filler file so that about `leave` bytes stay free. */
  async function fillLeaving(leave: number): Promise<void> {
    const size = (await freeBytes(mount.path)) - leave;
    if (size > 0) await writeFile(filler(), Buffer.alloc(size));
  }

  async function partFiles(): Promise<string[]> {
    return (await readdir(modelsDir(mount.path))).filter((n) => n.endsWith('.part'));
  }

  async function deploy(version: string, bytes: Uint8Array) {
    server.files.set(sha256Of(bytes), bytes);
    const assignment = await assignmentFor({ name: 'clf', version, bytes, privateKeyPem: keys.privateKeyPem, runtime, scratchDir: scratch.path });
    const before = events.length;
    runner.submit(desired(nextVersion++, assignment));
    await runner.idle();
    return { first: events.slice(before), activated: () => events.slice(before).some((e) => e.phase === 'active' && e.version === version) };
  }

  beforeAll(async () => {
    scratch = await tempDir('disk-full-scratch');
    mount = await tempDir('disk-full');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mount.path]);
    mounted = true;
    server = await startArtifactServer(creds);
    store = createAgentStore({ path: join(mount.path, 'agent.db'), logger: silentLogger });
    store.start();
    runtime = createModelRuntime({ workers: 1, threads: 1, logger: silentLogger });
    table = createModelTable();
    runner = createDeploymentRunner({
      stateDir: mount.path,
      apiUrl: server.apiUrl,
      auth: creds,
      hubPublicKey: keys.publicKeyPem,
      store,
      runtime,
      table,
      download: createDownloader({ logger: silentLogger, retries: 1, retryDelayMs: 5 }),
      publishEvent: (e) => events.push(e),
      onStateChange: () => undefined,
      logger,
      retryDelayMs: () => 50,
      diskReserveBytes: RESERVE,
    });
    runner.start();
  });

  afterAll(async () => {
    await runner?.stop();
    for (const m of table?.list() ?? []) await m.close();
    await runtime?.stop();
    store?.stop();
    await server?.close();
    if (mounted) execFileSync('umount', [mount.path]);
    await mount?.remove();
    await scratch?.remove();
  });

  it('checks free space before downloading: DISK_FULL naming the bytes, nothing written, retried when space returns', async () => {
    const bytes = model(1);
    await fillLeaving(bytes.byteLength / 2);
    const free = await freeBytes(mount.path);
    const requests = server.requests.length;

    const { first, activated } = await deploy('1.0.0', bytes);
    const failed = first.find((e) => e.phase === 'failed')!;
    expect(failed).toMatchObject({ code: 'DISK_FULL', version: '1.0.0' });
    expect(failed.message).toBe(
      `clf@1.0.0 needs ${bytes.byteLength + RESERVE} bytes free in ${modelsDir(mount.path)} ` +
        `(${bytes.byteLength} of its ${bytes.byteLength}-byte file still to download, plus ${RESERVE} kept free) but only ${free} bytes are free; will retry`,
    );
    expect(server.requests.length).toBe(requests);
    expect(await partFiles()).toEqual([]);
    expect(table.get('clf')).toBeUndefined();

    await rm(filler());
    await eventually(activated, 'the retry to activate 1.0.0 once space is back');
    await runner.idle();
    expect(table.get('clf')?.version).toBe('1.0.0');
    expect(store.listFailures()).toEqual([]);
  });

  it('deletes the part file when the disk fills up during the download, reports DISK_FULL and retries', async () => {
    const bytes = model(2);
    // The check passes; then, before the body arrives, something else takes the space.
    server.beforeBody.push(() => fillLeaving(bytes.byteLength / 3));

    const { first, activated } = await deploy('2.0.0', bytes);
    const failed = first.find((e) => e.phase === 'failed')!;
    expect(failed).toMatchObject({ code: 'DISK_FULL', version: '2.0.0', keptVersion: '1.0.0' });
    expect(failed.message).toMatch(new RegExp(`^no space left in ${modelsDir(mount.path)} while downloading .* of ${bytes.byteLength} bytes were written, the partial file was deleted$`));
    expect(await partFiles()).toEqual([]);
    expect(table.get('clf')?.version).toBe('1.0.0');

    await rm(filler());
    await eventually(activated, 'the retry to activate 2.0.0 once space is back');
    await runner.idle();
    expect(table.get('clf')?.version).toBe('2.0.0');
  });

  it('keeps running and retrying when agent.db itself cannot record the failure', async () => {
    const bytes = model(3);
    await fillLeaving(0);
    const logged = logLines.length;

    const { first, activated } = await deploy('3.0.0', bytes);
    expect(first.find((e) => e.phase === 'failed')).toMatchObject({ code: 'DISK_FULL', version: '3.0.0', keptVersion: '2.0.0' });
    expect(logLines.slice(logged).some((l) => l.includes('cannot record the deployment failure in agent.db'))).toBe(true);
    expect(await partFiles()).toEqual([]);

    await rm(filler());
    await eventually(activated, 'the retry to activate 3.0.0 once space is back');
    await runner.idle();
    expect(table.get('clf')?.version).toBe('3.0.0');
    expect(store.listFailures()).toEqual([]);
  });

  it('counts the unpacked model beside a compressed transfer copy', async () => {
    const bytes = model(4);
    const packed = gzipSync(bytes);
    server.files.set(sha256Of(packed), packed);
    const signed = await assignmentFor({ name: 'clf', version: '4.0.0', bytes, privateKeyPem: keys.privateKeyPem, runtime, scratchDir: scratch.path });
    const manifest: Manifest = { ...signed.manifest.manifest, transfer: { encoding: 'gzip', size: packed.byteLength, sha256: sha256Of(packed) } };
    const fetch = () =>
      fetchModelFile(manifest, { stateDir: mount.path, apiUrl: server.apiUrl, auth: creds, download: createDownloader({ logger: silentLogger }), diskReserveBytes: RESERVE });
    // Room for the transfer copy, not for it and the unpacked model together.
    await fillLeaving(packed.byteLength + RESERVE + bytes.byteLength / 2);
    const free = await freeBytes(mount.path);
    const requests = server.requests.length;

    await expect(fetch()).rejects.toMatchObject({
      code: 'DISK_FULL',
      message:
        `clf@4.0.0 needs ${packed.byteLength + bytes.byteLength + RESERVE} bytes free in ${modelsDir(mount.path)} ` +
        `(${packed.byteLength} bytes of its gzip transfer file still to download and ${bytes.byteLength} to unpack, plus ${RESERVE} kept free) but only ${free} bytes are free; will retry`,
    });
    expect(server.requests.length).toBe(requests);
    expect(await partFiles()).toEqual([]);

    await rm(filler());
    expect(await fetch()).toBe(modelPath(mount.path, sha256Of(bytes)));
  });
});
