import { execFileSync } from 'node:child_process';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { freeBytes } from '../src/models/disk-space.js';
import { createDownloader } from '../src/models/download.js';
import { fetchGolden } from '../src/models/fetch-golden.js';
import { fetchModelFile } from '../src/models/fetch-model.js';
import { modelPath, modelsDir } from '../src/models/model-files.js';
import { startDeploymentRig, type DeploymentRig } from './support/deployment-rig.js';
import { sha256Of } from './support/manifests.js';
import { hasTool } from '../../../test/support/tools.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

// A real small file system: a 2 MiB tmpfs mounted for this test (we run as root here and in CI).

const creds = { username: 'dev-disk', password: 'secret-disk' };
const RESERVE = 64 * 1024;
/** About 270 KB each: several fit on the 2 MiB disk, none fits beside the filler. */
const model = (seed: number) => buildMlp({ inputSize: 128, hidden: [512], outputSize: 4, seed });

describe('deployment on a full disk (real tmpfs)', () => {
  const logLines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
  let scratch: { path: string; remove: () => Promise<void> };
  let mount: { path: string; remove: () => Promise<void> };
  let mounted = false;
  let rig: DeploymentRig;
  const filler = () => join(mount.path, 'filler');

  /** Writes a filler file so that about `leave` bytes stay free. */
  async function fillLeaving(leave: number): Promise<void> {
    const size = (await freeBytes(mount.path)) - leave;
    if (size > 0) await writeFile(filler(), Buffer.alloc(size));
  }

  async function partFiles(): Promise<string[]> {
    return (await readdir(modelsDir(mount.path))).filter((n) => n.endsWith('.part'));
  }

  /** Frees the disk, then waits for the runner's retry to make clf@version the active model. */
  async function recoverTo(version: string, activated: () => boolean): Promise<void> {
    await rm(filler());
    await eventually(activated, `the retry to activate ${version} once space is back`);
    await rig.runner.idle();
    expect(rig.table.get('clf')?.version).toBe(version);
  }

  /** For fetching one file outside the runner, with the runner's reserve. */
  const fetchOptions = () => ({
    stateDir: mount.path,
    apiUrl: rig.server.apiUrl,
    auth: creds,
    download: createDownloader({ logger: silentLogger }),
    diskReserveBytes: RESERVE,
  });

  /** Deploys `bytes` as clf@version; `ready` runs once its manifest is signed, just before the runner gets it. */
  async function deploy(version: string, bytes: Uint8Array, ready = () => {}) {
    rig.server.files.set(sha256Of(bytes), bytes);
    const assignment = await rig.assignment({ name: 'clf', version, bytes });
    ready();
    const before = rig.events.length;
    const first = await rig.apply(assignment);
    return { first, activated: () => rig.events.slice(before).some((e) => e.phase === 'active' && e.version === version) };
  }

  beforeAll(async () => {
    scratch = await tempDir('disk-full-scratch');
    mount = await tempDir('disk-full');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mount.path]);
    mounted = true;
    rig = await startDeploymentRig({ stateDir: mount.path, scratchDir: scratch.path, creds, retryDelayMs: 50, logger, diskReserveBytes: RESERVE });
  });

  afterAll(async () => {
    await rig?.stop();
    if (mounted) execFileSync('umount', [mount.path]);
    await mount?.remove();
    await scratch?.remove();
  });

  it('checks free space before downloading: DISK_FULL naming the bytes, nothing written, retried when space returns', async () => {
    const bytes = model(1);
    await fillLeaving(bytes.byteLength / 2);
    const free = await freeBytes(mount.path);
    const requests = rig.server.requests.length;

    const { first, activated } = await deploy('1.0.0', bytes);
    const failed = first.find((e) => e.phase === 'failed')!;
    expect(failed).toMatchObject({ code: 'DISK_FULL', version: '1.0.0' });
    expect(failed.message).toBe(
      `clf@1.0.0 needs ${bytes.byteLength + RESERVE} bytes free in ${modelsDir(mount.path)} ` +
        `(${bytes.byteLength} of its ${bytes.byteLength}-byte file still to download, plus ${RESERVE} kept free) but only ${free} bytes are free; will retry`,
    );
    expect(rig.server.requests.length).toBe(requests);
    expect(await partFiles()).toEqual([]);
    expect(rig.table.get('clf')).toBeUndefined();

    await recoverTo('1.0.0', activated);
    expect(rig.store.listFailures()).toEqual([]);
  });

  it('deletes the part file when the disk fills up during the download, reports DISK_FULL and retries', async () => {
    const bytes = model(2);
    // The check passes; then, before the body arrives, something else takes the space.
    rig.server.beforeBody.push(() => fillLeaving(bytes.byteLength / 3));

    const { first, activated } = await deploy('2.0.0', bytes);
    const failed = first.find((e) => e.phase === 'failed')!;
    expect(failed).toMatchObject({ code: 'DISK_FULL', version: '2.0.0', keptVersion: '1.0.0' });
    expect(failed.message).toMatch(new RegExp(`^no space left in ${modelsDir(mount.path)} while downloading .* of ${bytes.byteLength} bytes were written, the partial file was deleted$`));
    expect(await partFiles()).toEqual([]);
    expect(rig.table.get('clf')?.version).toBe('1.0.0');

    await recoverTo('2.0.0', activated);
  });

  it('keeps running and retrying when agent.db itself cannot record the failure', async () => {
    const bytes = model(3);
    await fillLeaving(0);
    const logged = logLines.length;

    const { first, activated } = await deploy('3.0.0', bytes);
    expect(first.find((e) => e.phase === 'failed')).toMatchObject({ code: 'DISK_FULL', version: '3.0.0', keptVersion: '2.0.0' });
    expect(logLines.slice(logged).some((l) => l.includes('cannot record the deployment failure in agent.db'))).toBe(true);
    expect(await partFiles()).toEqual([]);

    await recoverTo('3.0.0', activated);
    expect(rig.store.listFailures()).toEqual([]);
  });

  it('switches no model when agent.db cannot record the activation: DISK_FULL, the previous version serves, nothing stays loaded', async () => {
    const bytes = model(6);
    // The model is downloaded and loaded; then the disk fills up before agent.db is told.
    const { first, activated } = await deploy('6.0.0', bytes, () => rig.afterLoad.push(() => fillLeaving(0)));
    expect(first.find((e) => e.phase === 'failed')).toMatchObject({ code: 'DISK_FULL', version: '6.0.0', keptVersion: '3.0.0' });
    expect(first.some((e) => e.phase === 'active')).toBe(false);
    expect(rig.table.get('clf')?.version).toBe('3.0.0');
    expect(rig.runtime.loaded.size).toBe(1);

    await recoverTo('6.0.0', activated);
    expect(rig.runtime.loaded.size).toBe(1);
    expect(rig.store.listModels().find((m) => m.active)?.version).toBe('6.0.0');
  });

  it('counts the unpacked model beside a compressed transfer copy', async () => {
    const bytes = model(4);
    const packed = gzipSync(bytes);
    rig.server.files.set(sha256Of(packed), packed);
    const signed = await rig.assignment({ name: 'clf', version: '4.0.0', bytes });
    const manifest: Manifest = { ...signed.manifest.manifest, transfer: { encoding: 'gzip', size: packed.byteLength, sha256: sha256Of(packed) } };
    const fetch = () => fetchModelFile(manifest, fetchOptions());
    // Room for the transfer copy, not for it and the unpacked model together.
    await fillLeaving(packed.byteLength + RESERVE + bytes.byteLength / 2);
    const free = await freeBytes(mount.path);
    const requests = rig.server.requests.length;

    await expect(fetch()).rejects.toMatchObject({
      code: 'DISK_FULL',
      message:
        `clf@4.0.0 needs ${packed.byteLength + bytes.byteLength + RESERVE} bytes free in ${modelsDir(mount.path)} ` +
        `(${packed.byteLength} bytes of its gzip transfer file still to download and ${bytes.byteLength} to unpack, plus ${RESERVE} kept free) but only ${free} bytes are free; will retry`,
    });
    expect(rig.server.requests.length).toBe(requests);
    expect(await partFiles()).toEqual([]);

    await rm(filler());
    expect(await fetch()).toBe(modelPath(mount.path, sha256Of(bytes)));
  });

  it.skipIf(!hasTool('zstd', 'zstd'))('reports DISK_FULL when the disk fills up while a zstd transfer file is unpacked, leaving nothing partial', async () => {
    const bytes = model(7);
    const packed = execFileSync('zstd', ['-q', '-c', '-3'], { input: bytes });
    rig.server.files.set(sha256Of(packed), packed);
    const signed = await rig.assignment({ name: 'clf', version: '7.0.0', bytes });
    const manifest: Manifest = { ...signed.manifest.manifest, transfer: { encoding: 'zstd', size: packed.byteLength, sha256: sha256Of(packed) } };
    const fetch = () => fetchModelFile(manifest, fetchOptions());
    // The check passes; then, before the body arrives, something else takes all but room for the transfer copy.
    rig.server.beforeBody.push(() => fillLeaving(packed.byteLength + 64 * 1024));

    await expect(fetch()).rejects.toMatchObject({ code: 'DISK_FULL', message: expect.stringMatching(/^no space left in .* to unpack the zstd transfer file of clf@7\.0\.0: /) });
    expect((await readdir(modelsDir(mount.path))).filter((n) => /\.(part|tmp|zstd)$/.test(n))).toEqual([]);

    await rm(filler());
    expect(await fetch()).toBe(modelPath(mount.path, sha256Of(bytes)));
  });

  it('checks free space before downloading a golden file too', async () => {
    // A 200 KB golden input: the manifest refers to a golden file instead of holding it.
    const bytes = buildMlp({ inputSize: 50_000, hidden: [1], outputSize: 1, seed: 5 });
    const signed = await rig.assignment({ name: 'clf', version: '5.0.0', bytes, goldenFileInto: rig.server.files });
    const manifest = signed.manifest.manifest;
    const ref = manifest.golden.ref!;
    const fetch = () => fetchGolden(manifest, fetchOptions());
    await fillLeaving(RESERVE + ref.size / 2);
    const free = await freeBytes(mount.path);
    const requests = rig.server.requests.length;

    await expect(fetch()).rejects.toMatchObject({
      code: 'DISK_FULL',
      message:
        `clf@5.0.0 needs ${ref.size + RESERVE} bytes free in ${modelsDir(mount.path)} ` +
        `(${ref.size} of its ${ref.size}-byte golden file still to download, plus ${RESERVE} kept free) but only ${free} bytes are free; will retry`,
    });
    expect(rig.server.requests.length).toBe(requests);
    expect(await partFiles()).toEqual([]);

    await rm(filler());
    expect((await fetch()).inputs[0]!.shape).toEqual([1, 50_000]);
  });
});
