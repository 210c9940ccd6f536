import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApiTokenList, CreatedApiToken, Device, EnrollResponse, EnrollmentToken, ModelVersion, Rollout, RolloutSummary } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestHub } from './hub-harness.js';
import { simDevice, type SimDevice } from './rollout-devices.js';

/** The built bin, as a user runs it (`npx tsc -b` first). */
const FLEETCTL = fileURLToPath(new URL('../dist/cli/fleetctl.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('fleetctl against a running hub', () => {
  const t = useTestHub();
  let scratch: string;
  const sims: SimDevice[] = [];

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'ef-fleetctl-'));
  });
  afterAll(async () => {
    await Promise.all(sims.map((s) => s.close()));
    await rm(scratch, { recursive: true, force: true });
  });

  /** Runs the bin with no EDGEFLEET_* variables of the caller and an empty config directory, unless `env` gives them. */
  function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EDGEFLEET_')));
    return new Promise((resolve) => {
      execFile(process.execPath, [FLEETCTL, ...args], { env: { ...base, XDG_CONFIG_HOME: scratch, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }
  /** `--hub`/`--token` of the test hub and `--json`; the output must parse. */
  async function json<T>(...args: string[]): Promise<T> {
    const r = await run(['--hub', t.hub.apiUrl, '--token', t.adminToken, '--json', ...args]);
    expect(r.stderr, `fleetctl ${args.join(' ')}`).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as T;
  }

  it('drives a one-wave rollout: token, enrollment, labels, model push, create, watch to success', async () => {
    const token = await json<EnrollmentToken>('tokens', 'create', '--ttl', '600', '--label', 'site=lab');
    expect(token.token).toBeTruthy();
    const enrolled = await t.api<EnrollResponse>('POST', '/api/v1/enroll', { token: token.token, name: 'd0' });
    expect(enrolled.status).toBe(201);
    const sim = await simDevice(t, enrolled.body);
    sims.push(sim);

    const { devices } = await json<{ devices: Device[] }>('devices', 'list', '--label', 'site=lab');
    expect(devices.map((d) => d.id)).toEqual([sim.id]);
    const labelled = await json<Device>('devices', 'label', sim.id, 'rack=3', 'site=lab');
    expect(labelled.labels).toEqual({ site: 'lab', rack: '3' });
    expect((await json<Device>('devices', 'show', sim.id)).name).toBe('d0');

    const file = join(scratch, 'clf.onnx');
    await writeFile(file, buildMlp({ inputSize: 4, hidden: [8], outputSize: 3 }));
    const pushed = await json<ModelVersion>('models', 'push', file, '--name', 'clf', '--version', '1');
    expect(pushed).toMatchObject({ name: 'clf', version: '1' });
    expect((await json<{ models: Array<{ name: string; latest: string }> }>('models', 'list')).models).toContainEqual(expect.objectContaining({ name: 'clf', latest: '1' }));

    const created = await json<Rollout>('rollouts', 'create', '--model', 'clf', '--version', '1', '--target', 'label', 'rack=3', '--waves', '100%');
    expect(created).toMatchObject({ model: 'clf', version: '1', state: 'running', target: { labels: { rack: '3' } } });
    expect(created.waves.map((w) => w.spec.size)).toEqual(['100%']);

    // The simulated device takes its assignment and switches while fleetctl watches.
    const watching = run(['--hub', t.hub.apiUrl, '--token', t.adminToken, '--json', 'rollouts', 'status', created.id, '--watch', '--interval', '0.1']);
    await sim.switchTo(await sim.assigned('clf', created.id));
    const watched = await watching;
    expect(watched.code, watched.stderr).toBe(0);
    const done = JSON.parse(watched.stdout) as Rollout;
    expect(done.state).toBe('succeeded');
    expect(done.counts).toMatchObject({ active: 1 });

    const status = await json<Rollout>('rollouts', 'status', created.id);
    expect(status.waves[0]!.devices.map((d) => [d.deviceId, d.state])).toEqual([[sim.id, 'active']]);
    expect((await json<{ rollouts: RolloutSummary[] }>('rollouts', 'list')).rollouts.map((r) => r.id)).toContain(created.id);

    // The human forms render the same answers as tables.
    const human = await run(['--hub', t.hub.apiUrl, '--token', t.adminToken, 'rollouts', 'status', created.id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/state:\s+succeeded/);
    expect(human.stdout).toContain('active 1');
  });

  it('pauses, resumes and aborts a rollout that waits on its device', async () => {
    const sim = sims[0]!;
    const file = join(scratch, 'clf2.onnx');
    await writeFile(file, buildMlp({ inputSize: 4, hidden: [8], outputSize: 3, seed: 2 }));
    await json<ModelVersion>('models', 'push', file, '--name', 'clf', '--version', '2');
    const created = await json<Rollout>('rollouts', 'create', '--model', 'clf', '--version', '2', '--target', 'devices', sim.id, '--bake-sec', '60');
    expect(created.waves[0]!.spec).toEqual({ size: '100%', bakeSec: 60 });
    const paused = await run(['--hub', t.hub.apiUrl, '--token', t.adminToken, 'rollouts', 'pause', created.id]);
    expect(paused.stdout).toBe(`${created.id}: paused\n`);
    // Without a terminal --watch prints one line per change and no redraw codes; a pause is not success.
    const watchPaused = await run(['--hub', t.hub.apiUrl, '--token', t.adminToken, 'rollouts', 'status', created.id, '--watch', '--interval', '0.1']);
    expect(watchPaused.code).toBe(1);
    expect(watchPaused.stdout).toMatch(new RegExp(`^${created.id} paused wave 0 \\S+ devices .+\n$`));
    expect(watchPaused.stdout).not.toContain('\u001b[');
    expect(watchPaused.stderr).toContain(`rollouts resume ${created.id}`);
    expect((await json<Rollout>('rollouts', 'resume', created.id)).state).toBe('running');
    expect((await json<Rollout>('rollouts', 'abort', created.id)).state).toBe('aborted');
    const watchAborted = await run(['--hub', t.hub.apiUrl, '--token', t.adminToken, '--json', 'rollouts', 'status', created.id, '--watch']);
    expect(watchAborted.code).toBe(1);
    expect((JSON.parse(watchAborted.stdout) as Rollout).state).toBe('aborted');
    expect(watchAborted.stderr).toBe(`fleetctl: rollout ${created.id} ended aborted: aborted by an operator\n`);

    const again = await run(['--hub', t.hub.apiUrl, '--token', t.adminToken, 'rollouts', 'resume', created.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^fleetctl: .+ \([A-Z_]+\)\n$/);
  });

  it('creates, lists and revokes API tokens; shows model versions; revokes and restores a device', async () => {
    const created = await json<CreatedApiToken>('api-tokens', 'create', '--name', 'ci@build-1', '--role', 'viewer');
    expect(created).toMatchObject({ name: 'ci@build-1', role: 'viewer', expiresAt: null, token: expect.any(String) });
    const listed = await json<ApiTokenList>('api-tokens', 'list');
    expect(listed.tokens.find((x) => x.id === created.id)).toEqual({ id: created.id, name: 'ci@build-1', role: 'viewer', createdAt: created.createdAt, expiresAt: null });
    expect(JSON.stringify(listed)).not.toContain(created.token);
    const asViewer = await run(['--hub', t.hub.apiUrl, '--token', created.token, '--json', 'models', 'list']);
    expect(asViewer.code, asViewer.stderr).toBe(0);
    expect(await json('api-tokens', 'revoke', created.id)).toEqual({ id: created.id, revoked: true });
    const revoked = await run(['--hub', t.hub.apiUrl, '--token', created.token, 'models', 'list']);
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toMatch(/^fleetctl: .+ \([A-Z_]+\)\n$/);

    const versions = await json<{ versions: ModelVersion[] }>('models', 'show', 'clf');
    expect(versions.versions.map((v) => v.version).sort()).toEqual(['1', '2']);
    expect(await json<ModelVersion>('models', 'show', 'clf', '1')).toEqual(versions.versions.find((v) => v.version === '1'));
    const budget = join(scratch, 'clf3.onnx');
    await writeFile(budget, buildMlp({ inputSize: 4, hidden: [8], outputSize: 3, seed: 3 }));
    expect((await json<ModelVersion>('models', 'push', budget, '--name', 'clf', '--version', '3', '--min-agreement', '0.95')).budget).toEqual({ minAgreement: 0.95 });

    const sim = sims[0]!;
    expect((await json<Device>('devices', 'revoke', sim.id)).revoked).toBe(true);
    expect((await json<Device>('devices', 'restore', sim.id)).revoked).toBe(false);
  });

  it('reads health and drift, with hub and token from the environment or the config file', async () => {
    const env = { EDGEFLEET_HUB_URL: t.hub.apiUrl, EDGEFLEET_TOKEN: t.adminToken };
    const health = await run(['--json', 'health'], env);
    expect(health.code, health.stderr).toBe(0);
    expect(JSON.parse(health.stdout)).toMatchObject({ status: 'ok', connections: expect.any(Number) });

    const config = join(scratch, 'fleetctl.json');
    // Like ssh with a private key: a token others may read is refused, naming the fix.
    await writeFile(config, JSON.stringify({ hub: t.hub.apiUrl, token: t.adminToken }), { mode: 0o644 });
    await chmod(config, 0o644);
    const open = await run(['--config', config, 'health']);
    expect(open.code).toBe(1);
    expect(open.stderr).toContain(`chmod 600 ${config}`);
    expect(open.stderr + open.stdout).not.toContain(t.adminToken);
    await chmod(config, 0o600);
    const drift = await run(['--config', config, '--json', 'drift', 'list']);
    expect(drift.code, drift.stderr).toBe(0);
    expect(JSON.parse(drift.stdout)).toEqual(expect.any(Array));
    const alerts = await run(['--config', config, '--json', 'alerts', '--state', 'all']);
    expect(alerts.code, alerts.stderr).toBe(0);
    expect(JSON.parse(alerts.stdout)).toEqual([]);
  });

  it("prints the hub's error and exits 1 on a bad token", async () => {
    const direct = await fetch(`${t.hub.apiUrl}/api/v1/devices`, { headers: { authorization: 'Bearer not-a-token' } });
    const { error, code } = (await direct.json()) as { error: string; code: string };
    const r = await run(['--hub', t.hub.apiUrl, '--token', 'not-a-token', 'devices', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`fleetctl: ${error} (${code})\n`);
    expect(r.stdout).toBe('');

    // A rollout id that does not exist: the hub's 404 named, exit 1, nothing on stdout, with or without --watch.
    const missing = await fetch(`${t.hub.apiUrl}/api/v1/rollouts/ro-missing`, { headers: { authorization: `Bearer ${t.adminToken}` } });
    const notFound = (await missing.json()) as { error: string; code: string };
    for (const watch of [[], ['--watch']]) {
      const s = await run(['--hub', t.hub.apiUrl, '--token', t.adminToken, 'rollouts', 'status', 'ro-missing', ...watch]);
      expect(s).toEqual({ code: 1, stdout: '', stderr: `fleetctl: ${notFound.error} (${notFound.code})\n` });
    }
  });

  it("answers usage errors with commander's usage (or the bad argument named) and exit code 2", async () => {
    const missing = await run(['--hub', t.hub.apiUrl, 'rollouts', 'create', '--model', 'clf']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '--version <version>' not specified");
    const badTarget = await run(['--hub', t.hub.apiUrl, 'rollouts', 'create', '--model', 'clf', '--version', '1', '--target', 'everywhere']);
    expect(badTarget.code).toBe(2);
    expect(badTarget.stderr).toMatch(/^fleetctl: --target "everywhere" is not one of/);
    const badInterval = await run(['--hub', t.hub.apiUrl, 'rollouts', 'status', 'ro-1', '--watch', '--interval', 'Infinity']);
    expect(badInterval).toEqual({ code: 2, stdout: '', stderr: 'fleetctl: --interval "Infinity" is not a number of seconds from 0 to 3600\n' });
    const r = await run(['--hub', t.hub.apiUrl, 'deploy-everything']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'deploy-everything'");
    expect(r.stderr).toContain('Usage: fleetctl');
  });

  it('names the URL when the hub is down, and asks for one when none is given', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const down = await run(['--hub', `http://127.0.0.1:${port}`, 'health']);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`cannot reach the hub at http://127.0.0.1:${port}`);

    const none = await run(['devices', 'list']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no hub URL');
  });
});
