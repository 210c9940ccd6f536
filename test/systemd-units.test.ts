import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../packages/hub/src/config.js';
import { FD_HEADROOM } from '../packages/hub/src/broker/connection-cap.js';
import { REPO_ROOT } from './support/processes.js';
import { hasTool } from './support/tools.js';

const run = promisify(execFile);
const UNITS = ['edgefleet-agent.service', 'edgefleet-hub.service'];
const UNIT_DIR = join(REPO_ROOT, 'deploy/systemd');
/** The one complaint DESIGN.md ("systemd") accepts: ExecStart's binary is not installed on this machine. */
const NOT_INSTALLED = /^\S+\.service: Command \S+ is not executable: No such file or directory$/;

const readUnit = (unit: string) => readFile(join(UNIT_DIR, unit), 'utf8');

/** Every value a directive has in the unit text (directives may repeat). */
function directive(text: string, name: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}=`))
    .map((line) => line.slice(name.length + 1));
}

/** systemd-analyze's complaints about `unit` (copied to a scratch dir, with `dropIn` in its .d dir), minus the accepted one. */
async function complaints(scratch: string, unit: string, dropIn?: string): Promise<string[]> {
  const dir = await mkdtemp(join(scratch, 'verify-'));
  await cp(join(UNIT_DIR, unit), join(dir, unit));
  if (dropIn) {
    await mkdir(join(dir, `${unit}.d`));
    await cp(join(UNIT_DIR, dropIn), join(dir, `${unit}.d`, dropIn));
  }
  const output = await run('systemd-analyze', ['verify', join(dir, unit)]).then(
    ({ stdout, stderr }) => `${stdout}${stderr}`,
    (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
  );
  return output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !NOT_INSTALLED.test(line));
}

describe.skipIf(!hasTool('systemd-analyze', 'systemd'))('systemd units: systemd-analyze verify', () => {
  const scratch: string[] = [];
  afterAll(async () => {
    await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
  });
  const scratchDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ef-units-'));
    scratch.push(dir);
    return dir;
  };

  it.each(UNITS)('%s passes without a complaint (but that its ExecStart is not installed here)', async (unit) => {
    expect(await complaints(await scratchDir(), unit)).toEqual([]);
  });

  it('the agent with the Jetson GPU drop-in passes too', async () => {
    expect(await complaints(await scratchDir(), 'edgefleet-agent.service', 'jetson-gpu.conf')).toEqual([]);
  });
});

describe('systemd units: what they promise', () => {
  it.each(UNITS)('%s is Type=notify, readied by systemd-notify from a child (NotifyAccess=all)', async (unit) => {
    const text = await readUnit(unit);
    expect(directive(text, 'Type')).toEqual(['notify']);
    expect(directive(text, 'NotifyAccess')).toEqual(['all']);
  });

  it.each(UNITS)('%s is hardened: no capabilities, read-only system, no JIT-breaking MemoryDenyWriteExecute', async (unit) => {
    const text = await readUnit(unit);
    const expected: Record<string, string> = {
      NoNewPrivileges: 'yes',
      CapabilityBoundingSet: '',
      AmbientCapabilities: '',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes',
      ProtectControlGroups: 'yes',
      RestrictNamespaces: 'yes',
      LockPersonality: 'yes',
      RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6',
      SystemCallFilter: '@system-service',
      SystemCallErrorNumber: 'EPERM',
      SystemCallArchitectures: 'native',
      UMask: '0077',
      StateDirectoryMode: '0700',
      Restart: 'on-failure',
    };
    for (const [name, value] of Object.entries(expected)) expect(directive(text, name), name).toEqual([value]);
    expect(directive(text, 'MemoryDenyWriteExecute')).toEqual([]);
    // The agent never gives up (it spaces its own restarts: restart-backoff.ts); the hub has a start limit.
    if (unit === 'edgefleet-agent.service') expect(directive(text, 'StartLimitIntervalSec')).toEqual(['0']);
    else expect(directive(text, 'StartLimitBurst')).toHaveLength(1);
    expect(directive(text, 'RestartSec')).toEqual(['5']);
    // Not on systemd 252 (Debian 12, Raspberry Pi OS) or 249 (Jetson's Ubuntu 22.04).
    expect(directive(text, 'RestartSteps')).toEqual([]);
  });

  it.each([
    ['edgefleet-agent.service', 'packages/agent/src/main.ts'],
    ['edgefleet-hub.service', 'packages/hub/src/main.ts'],
  ])('%s gives the process its own stop timeout and more before SIGKILL', async (unit, main) => {
    const source = await readFile(join(REPO_ROOT, main), 'utf8');
    const stopMs = Number(/const STOP_TIMEOUT_MS = ([\d_]+);/.exec(source)?.[1]?.replace(/_/g, ''));
    expect(stopMs, `STOP_TIMEOUT_MS in ${main}`).toBeGreaterThan(0);
    const [timeoutSec] = directive(await readUnit(unit), 'TimeoutStopSec');
    expect(Number(timeoutSec) * 1000).toBeGreaterThan(stopMs);
  });

  it('the agent runs the bundle as user edgefleet, its socket in /run/edgefleet, memory capped', async () => {
    const text = await readUnit('edgefleet-agent.service');
    expect(directive(text, 'ExecStart')).toEqual(['/usr/bin/node /opt/edgefleet/agent/current/edgefleet-agent.mjs run']);
    expect(directive(text, 'User')).toEqual(['edgefleet']);
    expect(directive(text, 'RuntimeDirectory')).toEqual(['edgefleet']);
    expect(directive(text, 'RuntimeDirectoryMode')).toEqual(['0750']);
    expect(directive(text, 'Environment')).toContain('EDGEFLEET_AGENT_SOCKET=/run/edgefleet/agent.sock');
    expect(directive(text, 'MemoryMax')).toHaveLength(1);
    expect(directive(text, 'SyslogIdentifier')).toEqual(['edgefleet-agent']);
  });

  it("the hub's LimitNOFILE holds its default connection cap plus the fd headroom", async () => {
    const [limit] = directive(await readUnit('edgefleet-hub.service'), 'LimitNOFILE');
    expect(Number(limit)).toBeGreaterThanOrEqual(DEFAULT_CONFIG.maxConnections + FD_HEADROOM);
  });
});
