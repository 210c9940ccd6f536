import { readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '@edgefleet/shared';
import { killAll, startProcess } from '../../../test/support/processes.js';
import {
  createRestartBackoff,
  delayFor,
  nextDelay,
  parseHistory,
  readHistory,
  RESTARTS_FILE,
  type RestartHistory,
} from '../src/restart-backoff.js';
import { writeIdentity } from '../src/store/identity-file.js';
import { startNotifySocket } from './support/notify-socket.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

const AGENT_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const NOW = 1_800_000_000_000;
const starting = (failedStarts: number, lastStartAt = NOW - 10_000): RestartHistory => ({ failedStarts, lastStartAt, state: 'starting' });

describe('restart back-off: the delays', () => {
  it('waits nothing without history, then 5 s doubling to a 5 min cap over consecutive failed starts', () => {
    const delays: number[] = [];
    let history: RestartHistory | undefined;
    for (let i = 0; i < 10; i++) {
      const plan = nextDelay(history, NOW + i);
      delays.push(plan.delayMs);
      history = plan.record;
    }
    expect(delays).toEqual([0, 5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
    expect(history).toEqual({ failedStarts: 9, lastStartAt: NOW + 9, state: 'starting' });
  });

  it('stays at the cap for a huge count', () => {
    expect(delayFor(1_000_000)).toBe(300_000);
    expect(nextDelay(starting(Number.MAX_SAFE_INTEGER - 1), NOW).delayMs).toBe(300_000);
  });

  it('scales with the base the test knob sets', () => {
    expect([1, 2, 3, 9].map((n) => delayFor(n, 10))).toEqual([10, 20, 40, 600]);
  });

  it('starts the count anew after a run that was healthy for 60 s, or stopped cleanly', () => {
    for (const state of ['healthy', 'stopped'] as const) {
      const plan = nextDelay({ failedStarts: 0, lastStartAt: NOW - 5_000, state }, NOW);
      expect(plan, state).toEqual({ failedStarts: 0, delayMs: 0, record: { failedStarts: 0, lastStartAt: NOW, state: 'starting' } });
    }
    // The run after a healthy one fails quickly: the first back-off step, not the old count.
    expect(nextDelay(nextDelay({ failedStarts: 0, lastStartAt: NOW, state: 'healthy' }, NOW).record, NOW + 1).delayMs).toBe(5_000);
  });

  it('does not wait longer than the cap when the last start is in the future (a clock jump)', () => {
    const plan = nextDelay(starting(3, NOW + 365 * 24 * 3600_000), NOW);
    expect(plan.delayMs).toBe(40_000);
    expect(plan.record.lastStartAt).toBe(NOW);
    expect(nextDelay(starting(50, NOW + 1e12), NOW).delayMs).toBe(300_000);
  });

  it('reads a corrupt or foreign file as no history', () => {
    for (const text of ['', '{', 'null', '[]', '{"failedStarts":-1,"lastStartAt":1,"state":"starting"}', '{"failedStarts":1.5,"lastStartAt":1,"state":"starting"}', '{"failedStarts":1,"lastStartAt":"x","state":"starting"}', '{"failedStarts":1,"lastStartAt":1,"state":"crashed"}']) {
      expect(parseHistory(text), text).toBeUndefined();
    }
    expect(nextDelay(parseHistory('{garbage'), NOW).delayMs).toBe(0);
    expect(parseHistory(JSON.stringify(starting(2)))).toEqual(starting(2));
  });
});

describe('restart back-off: restarts.json', () => {
  let dir: { path: string; remove: () => Promise<void> };
  beforeAll(async () => {
    dir = await tempDir('backoff');
  });
  afterAll(async () => {
    await dir?.remove();
  });

  it('a missing file is no history; a start is recorded, healthy after the window, clean after a stop', async () => {
    expect(readHistory(dir.path)).toBeUndefined();
    const backoff = createRestartBackoff({ stateDir: dir.path, logger: silentLogger, pid: process.pid, env: {}, now: () => NOW, healthyAfterMs: 20 });
    await backoff.wait();
    expect(readHistory(dir.path)).toEqual({ failedStarts: 0, lastStartAt: NOW, state: 'starting' });
    backoff.ready();
    await eventually(() => readHistory(dir.path)?.state === 'healthy', 'the healthy mark');
    expect(readHistory(dir.path)).toEqual({ failedStarts: 0, lastStartAt: NOW, state: 'healthy' });
    backoff.stopped();
    expect(readHistory(dir.path)).toEqual({ failedStarts: 0, lastStartAt: NOW, state: 'stopped' });
  });

  it('counts a run that died before the healthy mark, and names a bad base', async () => {
    await writeFile(join(dir.path, RESTARTS_FILE), JSON.stringify(starting(0)));
    const backoff = createRestartBackoff({ stateDir: dir.path, logger: silentLogger, pid: process.pid, env: { EDGEFLEET_RESTART_BACKOFF_BASE_MS: '1' }, now: () => NOW });
    await backoff.wait();
    expect(readHistory(dir.path)).toEqual({ failedStarts: 1, lastStartAt: NOW, state: 'starting' });
    const bad = createRestartBackoff({ stateDir: dir.path, logger: silentLogger, pid: process.pid, env: { EDGEFLEET_RESTART_BACKOFF_BASE_MS: '5s' } });
    await expect(bad.wait()).rejects.toThrow(/EDGEFLEET_RESTART_BACKOFF_BASE_MS is "5s": expected a whole number of milliseconds/);
  });

  it('survives a tampered state dir: absurd counts, symlinks, oversized files, a state dir it cannot write', async () => {
    const file = join(dir.path, RESTARTS_FILE);
    const victim = join(dir.path, 'victim');
    const env = { EDGEFLEET_RESTART_BACKOFF_BASE_MS: '1' };
    // An absurd count waits the cap and is stored bounded, so the next start can still read it.
    await writeFile(file, JSON.stringify(starting(Number.MAX_SAFE_INTEGER)));
    await createRestartBackoff({ stateDir: dir.path, logger: silentLogger, pid: process.pid, env, now: () => NOW }).wait();
    expect(readHistory(dir.path)).toEqual({ failedStarts: 1_000_000, lastStartAt: NOW, state: 'starting' });
    // A symlinked record is not followed (read as no history); writing replaces the link, not its target.
    await writeFile(victim, JSON.stringify(starting(3)));
    await rm(file);
    await symlink(victim, file);
    expect(readHistory(dir.path)).toBeUndefined();
    // A symlink planted as the tmp file is not written through either.
    await symlink(victim, `${file}.tmp`);
    await createRestartBackoff({ stateDir: dir.path, logger: silentLogger, pid: process.pid, env, now: () => NOW }).wait();
    expect(JSON.parse(await readFile(victim, 'utf8'))).toEqual(starting(3));
    expect(readHistory(dir.path)).toEqual({ failedStarts: 0, lastStartAt: NOW, state: 'starting' });
    // A record far longer than one line is not one.
    await writeFile(file, JSON.stringify({ ...starting(1), pad: 'x'.repeat(10_000) }));
    expect(readHistory(dir.path)).toBeUndefined();
    // A state "dir" that is a file: the start goes on without a record.
    const notADir = join(dir.path, 'not-a-dir');
    await writeFile(notADir, '');
    await createRestartBackoff({ stateDir: notADir, logger: silentLogger, pid: process.pid, env, now: () => NOW }).wait();
    expect(readHistory(notADir)).toBeUndefined();
  });
});

/** The built agent under a fake NOTIFY_SOCKET, serving from its state dir while the hub is unreachable. */
describe('edgefleet-agent run: restart back-off', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let notify: Awaited<ReturnType<typeof startNotifySocket>>;
  const recordPath = () => join(dir.path, RESTARTS_FILE);
  const startAgent = (baseMs: number) =>
    startProcess('agent-backoff', [AGENT_MAIN, 'run', '--state-dir', dir.path, '--socket', join(dir.path, 'agent.sock')], {
      NOTIFY_SOCKET: join(dir.path, 'notify.sock'),
      EDGEFLEET_RESTART_BACKOFF_BASE_MS: String(baseMs),
    });
  const isBackoffLine = (l: { msg?: string }) => String(l.msg).startsWith('restart back-off');

  beforeAll(async () => {
    dir = await tempDir('backoff-proc');
    const keys = generateSigningKeyPair();
    // Nothing listens on port 1.
    await writeIdentity(dir.path, { deviceId: 'dev-backoff1', secret: 's', hubPublicKey: keys.publicKeyPem, brokerUrl: 'mqtt://127.0.0.1:1', apiUrl: 'http://127.0.0.1:1' });
    notify = await startNotifySocket(join(dir.path, 'notify.sock'));
  });
  afterEach(() => {
    notify.messages.length = 0;
  });
  afterAll(async () => {
    await killAll();
    await notify?.close();
    await dir?.remove();
  });

  it('after 2 failed starts waits, tells systemd why and extends its start timeout, then readies', async () => {
    await writeFile(recordPath(), JSON.stringify(starting(1, Date.now())));
    const agent = startAgent(20);
    const warn = await agent.waitForLine(isBackoffLine, 30_000, 'the back-off warning');
    expect(warn).toMatchObject({ level: 40, failedStarts: 2, delayMs: 40 });
    await agent.waitForMsg('agent ready');
    expect(agent.lines.findIndex(isBackoffLine)).toBeLessThan(agent.lines.findIndex((l) => l.msg === 'agent ready'));
    await eventually(() => notify.messages.includes('READY=1'), 'READY=1');
    await eventually(() => notify.messages.includes('STATUS=restart back-off: waiting 1 s after 2 failed starts'), 'the STATUS line');
    // The rest of the 40 ms wait plus 30 s, in microseconds.
    const extend = await eventually(() => notify.messages.find((m) => m.startsWith('EXTEND_TIMEOUT_USEC=')), 'EXTEND_TIMEOUT_USEC');
    expect(Number(extend.split('=')[1])).toBeGreaterThanOrEqual(30_000_000);
    expect(Number(extend.split('=')[1])).toBeLessThanOrEqual(30_040_000);
    expect(JSON.parse(await readFile(recordPath(), 'utf8'))).toMatchObject({ failedStarts: 2, state: 'starting' });

    expect(await agent.stop()).toBe(0);
    expect(JSON.parse(await readFile(recordPath(), 'utf8'))).toMatchObject({ failedStarts: 0, state: 'stopped' });
  });

  it('after a clean stop starts without a wait', async () => {
    const agent = startAgent(20);
    await agent.waitForMsg('agent ready');
    await eventually(() => notify.messages.includes('READY=1'), 'READY=1');
    expect(agent.lines.filter(isBackoffLine)).toEqual([]);
    expect(notify.messages.filter((m) => m.startsWith('STATUS=') || m.startsWith('EXTEND_TIMEOUT_USEC='))).toEqual([]);
    expect(await agent.stop()).toBe(0);
  });

  it('exits 0 at once on SIGTERM during the wait, leaving the clean mark', async () => {
    await writeFile(recordPath(), JSON.stringify(starting(20, Date.now())));
    // A 60 s wait (the cap for a 1 s base): the SIGTERM surely lands inside it.
    const agent = startAgent(1_000);
    await agent.waitForLine(isBackoffLine, 30_000, 'the back-off warning');
    expect(await agent.stop()).toBe(0);
    expect(agent.lines.some((l) => l.msg === 'agent ready')).toBe(false);
    expect(JSON.parse(await readFile(recordPath(), 'utf8'))).toMatchObject({ failedStarts: 0, state: 'stopped' });
  });
});
