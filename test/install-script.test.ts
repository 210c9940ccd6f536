import { spawnSync } from 'node:child_process';
import { cp, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAgentBundle, snapshotTree, type BuiltBundle, type TreeEntry } from './support/agent-bundle.js';
import { api, makeTempDir, startHub, type Hub } from './support/fleet.js';
import { killAll } from './support/processes.js';
import { makeScratchRoot, PASSWD, runScript, treeDiff } from './support/scratch-root.js';

// Acceptance 2: install.sh against a scratch root (--root), with a real hub and a real token.
// useradd/groupadd --prefix and chown need root; this machine and CI run tests as root.
if (process.getuid?.() !== 0) {
  throw new Error('install-script.test.ts must run as root (useradd --prefix, chown); run the tests as root or under `unshare --map-root-user`');
}

describe('install.sh and uninstall.sh in a scratch root', () => {
  let work: { path: string; remove: () => Promise<void> };
  let hub: Hub;
  let bundle: BuiltBundle;
  let root: string;
  let install: string;
  let uninstall: string;
  let pristine: Map<string, TreeEntry>;

  beforeAll(async () => {
    work = await makeTempDir('install');
    [hub, bundle] = await Promise.all([startHub({ dataDir: join(work.path, 'hub') }), buildAgentBundle(join(work.path, 'out'), { tarball: false })]);
    install = join(bundle.dir, 'install.sh');
    uninstall = join(bundle.dir, 'uninstall.sh');
    root = join(work.path, 'root');
    await makeScratchRoot(root);
    pristine = await snapshotTree(root);
  });

  afterAll(async () => {
    await killAll();
    await work?.remove();
  });

  const newToken = async () => (await api<{ token: string }>(hub, 'POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600 })).token;

  it('refuses careless input before touching anything', async () => {
    const noToken = runScript(install, ['--hub', hub.apiUrl, '--root', root]);
    expect(noToken.status).toBe(2);
    expect(noToken.stderr).toContain('--token is required');
    expect(noToken.stderr).toContain('usage:');
    expect(runScript(install, ['--token', 'x', '--root', root]).status).toBe(2);

    // A bundle built for another Node ABI: a clear error naming both, nothing installed.
    const wrongAbi = join(work.path, 'wrong-abi');
    await cp(bundle.dir, wrongAbi, { recursive: true });
    const manifest = JSON.parse(await readFile(join(wrongAbi, 'bundle.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(wrongAbi, 'bundle.json'), JSON.stringify({ ...manifest, nodeAbi: '1', nodeVersion: '1.0.0' }));
    const abi = runScript(join(wrongAbi, 'install.sh'), ['--hub', hub.apiUrl, '--token', 'x', '--root', root]);
    expect(abi.status).toBe(1);
    expect(abi.stderr).toMatch(/built with node 1\.0\.0 \(ABI 1\) but .* \(ABI \d+\)/);

    await writeFile(join(wrongAbi, 'bundle.json'), JSON.stringify({ ...manifest, arch: 'riscv64' }));
    const arch = runScript(join(wrongAbi, 'install.sh'), ['--hub', hub.apiUrl, '--token', 'x', '--root', root]);
    expect(arch.status).toBe(1);
    expect(arch.stderr).toContain(`this bundle is for linux-riscv64 but`);

    // A token the hub refuses: the hub's answer, and nothing half-installed.
    const refused = runScript(install, ['--hub', hub.apiUrl, '--token', 'not-a-real-token', '--root', root]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/enrollment refused by .*HTTP 401/);
    expect(treeDiff(pristine, await snapshotTree(root), true)).toEqual([]);
  });

  it('installs user, group, bundle, config, unit, identity and the enable link; a second run changes nothing', async () => {
    const args = ['--hub', hub.apiUrl, '--token', await newToken(), '--root', root, '--name', 'scratch-device'];
    const first = runScript(install, args);
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    expect(first.stdout).toContain('enrollment: enrolled with');

    const passwd = await readFile(join(root, 'etc/passwd'), 'utf8');
    const user = /^edgefleet:x:(\d+):(\d+):edgefleet agent:\/nonexistent:(\S+)$/m.exec(passwd);
    expect(user, passwd).not.toBeNull();
    const [uid, gid] = [Number(user![1]), Number(user![2])];
    expect(uid).toBeLessThan(1000);
    expect(user![3]).toMatch(/nologin$/);
    expect(await readFile(join(root, 'etc/group'), 'utf8')).toMatch(new RegExp(`^edgefleet:x:${gid}:$`, 'm'));
    expect(await readFile(join(root, 'etc/shadow'), 'utf8')).toMatch(/^edgefleet:!?\*?:/m);
    expect(await readFile(join(root, 'etc/gshadow'), 'utf8')).toMatch(/^edgefleet:/m);
    expect(await readFile(join(root, 'etc/passwd-'), 'utf8')).toBe(PASSWD);

    const opt = join(root, 'opt/edgefleet/agent');
    expect(await readlink(join(opt, 'current'))).toBe(bundle.manifest.version);
    const installed = await snapshotTree(join(opt, 'current/'));
    expect([...installed.keys()].filter((p) => installed.get(p)!.type === 'file').sort()).toEqual([...Object.keys(bundle.manifest.files), 'bundle.json'].sort());
    for (const [file, sha] of Object.entries(bundle.manifest.files)) {
      expect(installed.get(file)?.content, file).toBe(sha);
      expect(installed.get(file)?.uid, file).toBe(0);
    }

    const env = join(root, 'etc/edgefleet/agent.env');
    expect(await readFile(env, 'utf8')).toContain(`EDGEFLEET_HUB_URL=${hub.apiUrl}\n`);
    expect(((await stat(env)).mode & 0o777).toString(8)).toBe('640');
    expect((await stat(env)).gid).toBe(gid);

    const unit = await readFile(join(root, 'etc/systemd/system/edgefleet-agent.service'), 'utf8');
    const shipped = await readFile(join(bundle.dir, 'edgefleet-agent.service'), 'utf8');
    const nodePath = spawnSync('readlink', ['-f', process.execPath], { encoding: 'utf8' }).stdout.trim();
    expect(unit).toBe(shipped.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${nodePath} `));
    expect(await readlink(join(root, 'etc/systemd/system/multi-user.target.wants/edgefleet-agent.service'))).toBe('/etc/systemd/system/edgefleet-agent.service');
    // The unit's ExecStart, rooted in the scratch root, loads the installed copy through `current`.
    const execStart = /^ExecStart=(\S+) (\S+) run$/m.exec(unit);
    expect(execStart, unit).not.toBeNull();
    const help = spawnSync(execStart![1]!, [join(root, execStart![2]!), 'help'], { encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('edgefleet-agent run');

    const state = join(root, 'var/lib/edgefleet');
    const st = await stat(state);
    expect([st.uid, st.gid, (st.mode & 0o777).toString(8)]).toEqual([uid, gid, '700']);
    const identity = JSON.parse(await readFile(join(state, 'identity.json'), 'utf8')) as { deviceId: string };
    const device = await api<{ id?: string; name: string }>(hub, 'GET', `/api/v1/devices/${identity.deviceId}`);
    expect(device.name).toBe('scratch-device');
    expect((await stat(join(state, 'identity.json'))).uid).toBe(uid);

    // Same arguments (a used token: it must not be sent again): nothing rewritten, nothing enrolled.
    const before = await snapshotTree(root);
    const second = runScript(install, args);
    expect(second.stderr).toBe('');
    expect(second.status).toBe(0);
    expect(second.stdout).toContain('already enrolled');
    expect(second.stdout).not.toMatch(/: (created|installed|wrote|enrolled with|now )/);
    expect(treeDiff(before, await snapshotTree(root), true)).toEqual([]);

    // A user's edited config survives a re-run.
    await writeFile(env, 'EDGEFLEET_LOG_LEVEL=debug\n');
    const third = runScript(install, args);
    expect(third.status).toBe(0);
    expect(third.stdout).toContain('kept as it is');
    expect(await readFile(env, 'utf8')).toBe('EDGEFLEET_LOG_LEVEL=debug\n');
  });

  it('uninstall leaves the root as it was before install', async () => {
    const out = runScript(uninstall, ['--root', root]);
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    // Byte-for-byte, modes and owners; not mtimes: etc/passwd and friends were necessarily rewritten
    // (useradd, then userdel), and directories' mtimes move as entries come and go.
    expect(treeDiff(pristine, await snapshotTree(root), false)).toEqual([]);
    const again = runScript(uninstall, ['--root', root]);
    expect(again.status).toBe(0);
    expect(again.stdout).toContain('user edgefleet: already absent');
  });
});
