import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, REPO_ROOT, startProcess } from './support/processes.js';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the demo fleet', () => {
  let workDir = '';
  afterAll(async () => {
    await killAll();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('`npm run demo` prints an inference result and the dashboard URL, and Ctrl-C stops every process', async () => {
    workDir = await mkdtemp(join(tmpdir(), 'ef-demo-'));
    // The README's command itself; its set-up step finds everything installed and built already.
    const demo = startProcess(
      'demo',
      ['run', 'demo'],
      { EDGEFLEET_DEMO_DIR: workDir, EDGEFLEET_HUB_HTTP_PORT: '0', EDGEFLEET_HUB_MQTT_PORT: '0' },
      { command: 'npm', detached: true, cwd: REPO_ROOT },
    );
    const result = await demo.waitForLine((l) => String(l.msg).startsWith('inference result: '), 90_000, 'inference result');
    const probs = JSON.parse(/^inference result: (\[[^\]]*\])/.exec(String(result.msg))![1]!) as number[];
    expect(probs).toHaveLength(3);
    expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const pids = String((await demo.waitForLine((l) => String(l.msg).startsWith('processes: '))).msg).slice('processes: '.length).split(' ').map(Number);
    expect(pids).toHaveLength(4);
    const url = String((await demo.waitForLine((l) => String(l.msg).startsWith('dashboard: '))).msg).slice('dashboard: '.length);
    expect((await fetch(url)).status).toBe(200);
    await demo.waitForLine((l) => String(l.msg).startsWith('press Ctrl-C'));

    // npm re-raises the SIGINT once its script has exited, so the demo's own verdict is its last line.
    await demo.stopGroup('SIGINT');
    expect(demo.rawOutput.filter((l) => l.startsWith('stopped: '))).toEqual(['stopped: every process exited cleanly']);
    for (const pid of pids) expect(isAlive(pid), `process ${pid} still running`).toBe(false);
  }, 120_000);
});
