import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HUB_MAIN, killAll, startProcess } from '../../../test/support/processes.js';
import { startNotifySocket } from '../../agent/test/support/notify-socket.js';
import { eventually } from './hub-harness.js';

const NOBODY = 65534;
/** Below the default cap of 15,000 connections, as a unit with a small LimitNOFILE would give. */
const FD_LIMIT = 2048;

/**
 * The hub as deploy/systemd/edgefleet-hub.service runs it, where that can be reproduced without
 * systemd as PID 1: an unprivileged user, UMask=0077, its data dir 0700, a fake NOTIFY_SOCKET
 * (Type=notify), and an fd limit below its connection cap.
 */
describe('edgefleet-hub under Type=notify', () => {
  let dir: string;
  let notify: Awaited<ReturnType<typeof startNotifySocket>>;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('this test runs the hub as nobody through setpriv and chowns its data dir: expected to run as root (as CI does)');
    dir = await mkdtemp(join(tmpdir(), 'ef-hub-notify-'));
    await chmod(dir, 0o755);
    await mkdir(join(dir, 'data'), { mode: 0o700 });
    await chown(join(dir, 'data'), NOBODY, NOBODY);
    notify = await startNotifySocket(join(dir, 'notify.sock'));
    // Bound by root here; systemd's own socket accepts any sender in the unit.
    await chmod(join(dir, 'notify.sock'), 0o666);
  });

  afterAll(async () => {
    await killAll();
    await notify?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('sends READY=1 once HTTP and MQTT listen, lowers its broker cap below the fd limit, and STOPPING=1 on SIGTERM', async () => {
    const asUnit = `ulimit -n ${FD_LIMIT} && umask 077 && exec setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups "$@"`;
    const hub = startProcess('hub-unit', ['-c', asUnit, 'sh', process.execPath, HUB_MAIN], {
      NOTIFY_SOCKET: join(dir, 'notify.sock'),
      EDGEFLEET_HUB_DATA_DIR: join(dir, 'data'),
      EDGEFLEET_HUB_HOST: '127.0.0.1',
      EDGEFLEET_HUB_HTTP_PORT: '0',
      EDGEFLEET_HUB_MQTT_PORT: '0',
      EDGEFLEET_HUB_MAX_CONNECTIONS: '15000',
    }, { command: 'sh' });
    const lowered = await hub.waitForMsg('connection cap lowered below the fd limit');
    expect(lowered).toMatchObject({ configured: 15_000, fdLimit: FD_LIMIT });
    expect(Number(lowered.maxConnections)).toBeLessThan(FD_LIMIT);
    const ready = await hub.waitForMsg('hub ready');
    await eventually(() => notify.messages.includes('READY=1'), 'READY=1 on NOTIFY_SOCKET');
    // READY=1 comes after both listeners answer.
    expect((await fetch(`${String(ready.apiUrl)}/api/v1/health`)).status).toBe(200);
    expect(notify.messages.indexOf('READY=1')).toBe(0);
    expect(await hub.stop()).toBe(0);
    // systemd-notify is a child of its own; it may deliver after the hub has exited.
    await eventually(() => notify.messages.includes('STOPPING=1'), 'STOPPING=1 on NOTIFY_SOCKET');
  });
});
