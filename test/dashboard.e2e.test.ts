import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { enrollAgent, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { killAll, REPO_ROOT } from './support/processes.js';
import { hasTool } from './support/tools.js';

const CHROMIUM = '/usr/bin/chromium';

describe.skipIf(!hasTool('chromium', 'chromium'))('dashboard in headless Chromium', () => {
  let hub: Hub;
  const agents: AgentHandle[] = [];
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  let browser: Browser;

  beforeAll(async () => {
    const hubDir = await makeTempDir('hub');
    dirs.push(hubDir);
    hub = await startHub({ dataDir: hubDir.path });
    for (const name of ['cam-north', 'cam-south']) {
      const dir = await makeTempDir(name);
      dirs.push(dir);
      agents.push(await startAgent(dir.path, await enrollAgent(hub, dir.path, name)));
    }
    const userDataDir = await makeTempDir('chromium');
    dirs.push(userDataDir);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await killAll();
    await Promise.all(dirs.map((d) => d.remove()));
  });

  it('logs in, shows the agents online, then one offline when its agent stops', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    // The hub's CSP must fit the dashboard: Chromium reports every blocked script, style or request.
    const cspViolations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    await page.goto(`${hub.apiUrl}/`);
    await page.locator('input[type="password"], input[name="token"]').first().fill(hub.adminToken);
    await page.locator('form button, form input[type="submit"]').first().click();

    for (const agent of agents) {
      await page.locator(`[data-device-id="${agent.deviceId}"] [data-presence="online"]`).waitFor({ timeout: 30_000 });
    }

    const [stopped] = agents;
    expect(await stopped!.proc.stop()).toBe(0);
    await page.locator(`[data-device-id="${stopped!.deviceId}"] [data-presence="offline"]`).waitFor({ timeout: 30_000 });
    await expect(page.locator(`[data-device-id="${agents[1]!.deviceId}"] [data-presence="online"]`).count()).resolves.toBe(1);

    // The CPU chart is drawn from live telemetry: wait until it holds points before the picture.
    // Read through the DOM, not waitForFunction: polling a string predicate is an eval, which the CSP refuses.
    const chart = page.locator('#cpu-chart');
    await vi.waitUntil(async () => Number(await chart.getAttribute('data-points')) >= 2, { timeout: 30_000, interval: 200 });
    const shots = join(REPO_ROOT, 'test/artifacts');
    await mkdir(shots, { recursive: true });
    const path = join(shots, 'dashboard.png');
    await page.screenshot({ path, fullPage: true });
    await page.close();
    expect(cspViolations).toEqual([]);
  });
});
