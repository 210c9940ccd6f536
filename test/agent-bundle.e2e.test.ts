import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAgentBundle, snapshotTree, type BuiltBundle, type TreeEntry } from './support/agent-bundle.js';
import { api, eventually, makeTempDir, startHub, type Hub } from './support/fleet.js';
import { sampleModel } from './support/models.js';
import { killAll, REPO_ROOT, startProcess, type RunningProcess } from './support/processes.js';
import { createRollout, uploadVersion, waitForState } from './support/rollout-fleet.js';
import { unixRequest } from './support/unix-http.js';

const run = promisify(execFile);

// Acceptance 3: the bundled agent starts from the bundle alone (unpacked from its tarball in a temp dir
// outside the repository, no workspace, no NODE_PATH) and serves inference after a real rollout.
// The directory's name has a space (a careless unpack) and nothing is written beside the bundle at run
// time (under the unit's ProtectSystem=strict it is read-only).
describe('the agent bundle', () => {
  let work: { path: string; remove: () => Promise<void> };
  let hub: Hub;
  let bundle: BuiltBundle;
  let entry: string;
  let bundleDir: string;
  let unpacked: Map<string, TreeEntry>;
  let agent: RunningProcess | undefined;
  const env = (): Record<string, string> => ({ NODE_PATH: '', EDGEFLEET_TELEMETRY_INTERVAL_MS: '300' });

  beforeAll(async () => {
    work = await makeTempDir('bundle');
    [hub, bundle] = await Promise.all([startHub({ dataDir: join(work.path, 'hub') }), buildAgentBundle(join(work.path, 'out'))]);
    const device = join(work.path, 'the device');
    await mkdir(device);
    await run('tar', ['-xzf', bundle.tarball, '-C', device]);
    bundleDir = join(device, bundle.dir.split('/').pop()!);
    entry = join(bundleDir, bundle.manifest.entry);
    unpacked = await snapshotTree(bundleDir);
  });

  afterAll(async () => {
    await killAll();
    await work?.remove();
  });

  it('holds the agent, its worker and only the native modules', () => {
    const files = Object.keys(bundle.manifest.files);
    expect(files).toContain('edgefleet-agent.mjs');
    expect(files).toContain('session-worker.js');
    expect(files).toContain('edgefleet-agent.service');
    expect(files).toContain('install.sh');
    const packages = new Set(files.filter((f) => f.startsWith('node_modules/')).map((f) => f.split('/')[1]));
    expect([...packages].sort()).toEqual(['better-sqlite3', 'bindings', 'file-uri-to-path', 'onnxruntime-common', 'onnxruntime-node']);
    const binaries = files.filter((f) => f.includes('/bin/napi-v6/'));
    expect(binaries.length).toBeGreaterThan(0);
    for (const f of binaries) expect(f).toContain(`/bin/napi-v6/linux/${process.arch}/`);
    expect(bundle.manifest.nodeAbi).toBe(process.versions.modules);
  });

  it('enrolls, takes a rollout and answers inference over its Unix socket', async () => {
    const cwd = join(work.path, 'the device');
    const state = join(cwd, 'state');
    const socketPath = join(cwd, 'agent.sock');
    const { token } = await api<{ token: string }>(hub, 'POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600 });
    // The token by environment, as install.sh passes it: not on the command line, where ps shows it.
    const enroll = startProcess('bundle-enroll', [entry, 'enroll', '--hub', hub.apiUrl, '--name', 'bundled', '--state-dir', state], { ...env(), EDGEFLEET_ENROLL_TOKEN: token }, { cwd });
    expect(await enroll.exited).toBe(0);
    const enrolled = await enroll.waitForMsg('enrolled');
    const deviceId = String(enrolled.deviceId);

    agent = startProcess('bundle-agent', [entry, 'run', '--state-dir', state, '--socket', socketPath], env(), { cwd });
    await agent.waitForMsg('agent ready');
    await eventually(async () => (await api<{ online: boolean }>(hub, 'GET', `/api/v1/devices/${deviceId}`)).online, `${deviceId} online`);

    await uploadVersion(hub, 'sample', '1', sampleModel());
    const rollout = await createRollout(hub, { model: 'sample', version: '1', target: { all: true } });
    await waitForState(hub, rollout.id, ['succeeded']);

    const input = { name: 'input', shape: [1, 3, 16, 16], datatype: 'FP32', data: Array.from({ length: 3 * 16 * 16 }, (_, i) => (i % 7) / 7) };
    const meta = await unixRequest(socketPath, 'GET', '/v2/models/sample');
    expect(meta.status).toBe(200);
    const inputName = meta.json<{ inputs: Array<{ name: string }> }>().inputs[0]!.name;
    const res = await unixRequest(socketPath, 'POST', '/v2/models/sample/infer', JSON.stringify({ inputs: [{ ...input, name: inputName }] }), {
      'content-type': 'application/json',
    });
    expect(res.status, res.body.toString()).toBe(200);
    const outputs = res.json<{ outputs: Array<{ shape: number[]; data: number[] }> }>().outputs;
    expect(outputs[0]!.shape).toEqual([1, 4]);
    expect(outputs[0]!.data.every((v) => Number.isFinite(v))).toBe(true);

    // Nothing mapped from the workspace (a module resolved through the repo's node_modules would be).
    const maps = await readFile(`/proc/${agent.child.pid}/maps`, 'utf8');
    expect(maps).toContain(join(bundleDir, 'node_modules'));
    expect(maps.split('\n').filter((line) => line.includes(REPO_ROOT))).toEqual([]);

    expect(await agent.stop()).toBe(0);
    expect(await snapshotTree(bundleDir)).toEqual(unpacked);
  });
});
