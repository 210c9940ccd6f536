import { cp, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAgentBundle, snapshotTree, type BuiltBundle } from './support/agent-bundle.js';
import { api, makeTempDir, startHub, type Hub } from './support/fleet.js';
import { killAll } from './support/processes.js';
import { killScriptAt, makeScratchRoot, runScript } from './support/scratch-root.js';

// install.sh and uninstall.sh as a careless user and an attacker would run them, in a scratch root.
if (process.getuid?.() !== 0) {
  throw new Error('install-script-hostile.test.ts must run as root (useradd --prefix, chown); run the tests as root or under `unshare --map-root-user`');
}

describe('install.sh against careless and hostile use', () => {
  let work: { path: string; remove: () => Promise<void> };
  let hub: Hub;
  let bundle: BuiltBundle;
  /** The bundle copied to a directory whose name has a space and a quote. */
  let oddBundle: string;
  let root: string;

  beforeAll(async () => {
    work = await makeTempDir('install-hostile');
    [hub, bundle] = await Promise.all([startHub({ dataDir: join(work.path, 'hub') }), buildAgentBundle(join(work.path, 'out'), { tarball: false })]);
    oddBundle = join(work.path, "my bundle's copy");
    await cp(bundle.dir, oddBundle, { recursive: true });
    root = join(work.path, 'root dir');
    await makeScratchRoot(root);
  });

  afterAll(async () => {
    await killAll();
    await work?.remove();
  });

  const newToken = async () => (await api<{ token: string }>(hub, 'POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600 })).token;
  const identityOf = async () => JSON.parse(await readFile(join(root, 'var/lib/edgefleet/identity.json'), 'utf8')) as { deviceId: string };
  const opt = () => join(root, 'opt/edgefleet/agent');

  it('refuses a hub URL that would add lines to agent.env', () => {
    const r = runScript(join(oddBundle, 'install.sh'), ['--hub', 'http://hub:8080\nNODE_OPTIONS=--require=/tmp/x.js', '--token', 'x', '--root', root]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--hub contains whitespace');
  });

  it('runs from a path with spaces, under sh, from another cwd with CDPATH set; token on stdin; a name of shell syntax stays a name', async () => {
    const token = await newToken();
    const pwned = join(work.path, 'pwned');
    const name = `-dev $(touch ${pwned}) \`touch ${pwned}\` "q" 'q'`;
    const r = runScript('sh', [join(oddBundle, 'install.sh'), '--hub', hub.apiUrl, '--token-file', '-', '--name', name, '--root', root], {
      cwd: '/',
      input: `${token}\n`,
      env: { CDPATH: work.path },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    await expect(stat(pwned)).rejects.toThrow(/ENOENT/);
    const device = await api<{ name: string }>(hub, 'GET', `/api/v1/devices/${(await identityOf()).deviceId}`);
    expect(device.name).toBe(name);
    // The token is spent and is nowhere on the device.
    for (const [path, entry] of await snapshotTree(root)) {
      if (entry.type === 'file') expect(await readFile(join(root, path), 'utf8'), path).not.toContain(token);
    }
  });

  it('upgrades: current moves to the new version, the replaced one stays for rollback, older ones go', async () => {
    const withVersion = async (version: string) => {
      const dir = join(work.path, `bundle-${version}`);
      await cp(bundle.dir, dir, { recursive: true });
      await writeFile(join(dir, 'bundle.json'), JSON.stringify({ ...bundle.manifest, version }));
      return join(dir, 'install.sh');
    };
    for (const version of ['0.0.1', '0.0.2']) {
      const r = runScript(await withVersion(version), ['--hub', hub.apiUrl, '--root', root]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain('no token used');
    }
    expect((await readdir(opt())).sort()).toEqual(['0.0.1', '0.0.2', 'current']);
    const again = runScript(join(oddBundle, 'install.sh'), ['--hub', hub.apiUrl, '--root', root]);
    expect(again.status).toBe(0);
    expect(await readlink(join(opt(), 'current'))).toBe(bundle.manifest.version);
    expect((await readdir(opt())).sort()).toEqual(['0.0.2', bundle.manifest.version, 'current'].sort());
    expect(again.stdout).toContain('(was 0.0.2)');
  });

  it('uninstall --keep-state, then install without a token: same identity, no enrollment; hub.env beside agent.env survives', async () => {
    const before = await identityOf();
    await writeFile(join(root, 'etc/edgefleet/hub.env'), 'EDGEFLEET_LOG_LEVEL=info\n');
    const un = runScript(join(oddBundle, 'uninstall.sh'), ['--root', root, '--keep-state']);
    expect(un.stderr).toBe('');
    expect(await readFile(join(root, 'etc/edgefleet/hub.env'), 'utf8')).toBe('EDGEFLEET_LOG_LEVEL=info\n');
    await expect(stat(join(root, 'etc/edgefleet/agent.env'))).rejects.toThrow(/ENOENT/);

    const r = runScript(join(oddBundle, 'install.sh'), ['--hub', hub.apiUrl, '--root', root]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('already enrolled');
    expect((await identityOf()).deviceId).toBe(before.deviceId);
    const uid = Number(/^edgefleet:x:(\d+):/m.exec(await readFile(join(root, 'etc/passwd'), 'utf8'))![1]);
    expect((await stat(join(root, 'var/lib/edgefleet/identity.json'))).uid).toBe(uid);
  });

  it('a run killed right after enrolling is finished by the next run, with no token', async () => {
    const un = runScript(join(oddBundle, 'uninstall.sh'), ['--root', root]);
    expect(un.status).toBe(0);
    // A pre-existing edgefleet user with a login shell and a home: used as it is.
    await writeFile(join(root, 'etc/passwd'), `${await readFile(join(root, 'etc/passwd'), 'utf8')}edgefleet:x:990:990::/home/edgefleet:/bin/bash\n`);
    await writeFile(join(root, 'etc/group'), `${await readFile(join(root, 'etc/group'), 'utf8')}edgefleet:x:990:\n`);
    const killed = await killScriptAt(join(oddBundle, 'install.sh'), ['--hub', hub.apiUrl, '--token', await newToken(), '--root', root], 'enrollment: enrolled');
    expect(killed.killed).toBe(true);
    const r = runScript(join(oddBundle, 'install.sh'), ['--hub', hub.apiUrl, '--root', root]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('user edgefleet: already exists (uid 990, shell /bin/bash)');
    expect(await readlink(join(opt(), 'current'))).toBe(bundle.manifest.version);
    expect((await readdir(opt())).filter((n) => n.endsWith('.new'))).toEqual([]);
    const st = await stat(join(root, 'var/lib/edgefleet'));
    expect([st.uid, st.gid, (st.mode & 0o777).toString(8)]).toEqual([990, 990, '700']);
    expect(await readlink(join(root, 'etc/systemd/system/multi-user.target.wants/edgefleet-agent.service'))).toBe('/etc/systemd/system/edgefleet-agent.service');
  });
});
