import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Device, Rollout } from '@edgefleet/shared';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { api, enrollAgent, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { tinyModel } from './support/models.js';
import { killAll, REPO_ROOT } from './support/processes.js';
import { hasTool } from './support/tools.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(REPO_ROOT, 'test/artifacts');
/** Long enough to see (and act on) the first wave baking on a loaded machine, short enough for a test. */
const BAKE_SEC = 8;

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

  /** A new page signed in with the admin token; `cspViolations` collects what the hub's CSP blocked. */
  async function signedInPage(): Promise<{ page: Page; cspViolations: string[] }> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    // The hub's CSP must fit the dashboard: Chromium reports every blocked script, style or request.
    const cspViolations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    await page.goto(`${hub.apiUrl}/`);
    await page.locator('#login-form input[name="token"]').fill(hub.adminToken);
    await page.locator('#login-form button[type="submit"]').click();
    return { page, cspViolations };
  }

  // Before the presence test, which stops an agent: this rollout needs both devices online.
  it('starts a two-wave rollout from the page, pauses it while the first wave bakes, resumes it and sees it succeed', async () => {
    await api(hub, 'POST', '/api/v1/models/tiny/versions?version=1.0.0', tinyModel(), 201);
    const { page, cspViolations } = await signedInPage();
    for (const agent of agents) {
      await page.locator(`[data-device-id="${agent.deviceId}"] [data-presence="online"]`).waitFor({ timeout: 30_000 });
    }

    await page.locator('[data-action="new-rollout"]').click();
    const form = page.locator('[data-form="start-rollout"]');
    await form.locator('select[name="model"] option[value="tiny"]').waitFor({ state: 'attached' });
    await form.locator('select[name="model"]').selectOption('tiny');
    await form.locator('select[name="version"] option[value="1.0.0"]').waitFor({ state: 'attached' });
    await form.locator('select[name="version"]').selectOption('1.0.0');

    // The hub's refusal is shown on the page: a last wave of 50% does not reach the whole target.
    await form.locator('input[name="waves"]').fill('1, 50%');
    await form.locator('button[type="submit"]').click();
    const formError = form.locator('[data-form-error]');
    await vi.waitUntil(async () => /\b400\b/.test((await formError.textContent()) ?? ''), { timeout: 10_000, interval: 100 });

    await form.locator('input[name="waves"]').fill('1, 100%');
    await form.locator('input[name="bakeSec"]').fill(String(BAKE_SEC));
    await form.locator('button[type="submit"]').click();
    const detail = page.locator('[data-rollout-detail]');
    await detail.locator('[data-wave-index="1"]').waitFor({ timeout: 10_000 });
    const id = await detail.getAttribute('data-rollout-id');
    expect(id).toBeTruthy();
    await page.locator(`#rollouts [data-rollout-id="${id}"]`).waitFor();

    // Pause while the first wave bakes: the page learns of the bake from the event stream alone.
    await detail.locator('[data-wave-index="0"][data-wave-state="baking"]').waitFor({ timeout: 60_000 });
    await detail.locator('[data-action="pause"]').click();
    await page.locator('[data-rollout-detail][data-rollout-state="paused"]').waitFor({ timeout: 10_000 });
    expect((await api<Rollout>(hub, 'GET', `/api/v1/rollouts/${id}`)).state).toBe('paused');
    expect(await detail.locator('[data-action="pause"]').isDisabled()).toBe(true);
    expect(await detail.locator('[data-action="resume"]').isEnabled()).toBe(true);
    await page.locator(`#rollouts [data-rollout-id="${id}"][data-rollout-state="paused"]`).waitFor();

    await detail.locator('[data-action="resume"]').click();
    await page.locator('[data-rollout-detail][data-rollout-state="succeeded"]').waitFor({ timeout: 90_000 });
    await page.locator(`#rollouts [data-rollout-id="${id}"][data-rollout-state="succeeded"]`).waitFor();
    for (const index of [0, 1]) {
      await detail.locator(`[data-wave-index="${index}"][data-wave-state="passed"]`).waitFor();
      // Each wave shows the gates it was judged by, none failed.
      expect(await detail.locator(`[data-wave-index="${index}"] [data-gate]`).count()).toBeGreaterThan(0);
      expect(await detail.locator(`[data-wave-index="${index}"] [data-gate-status="failed"]`).count()).toBe(0);
    }
    for (const agent of agents) {
      await detail.locator(`tr[data-device-id="${agent.deviceId}"][data-device-state="active"]`).waitFor();
    }
    expect(await detail.locator('[data-action="rollback"]').isEnabled()).toBe(true);
    for (const action of ['pause', 'resume', 'abort']) expect(await detail.locator(`[data-action="${action}"]`).isDisabled()).toBe(true);

    const { devices } = await api<{ devices: Device[] }>(hub, 'GET', '/api/v1/devices');
    for (const agent of agents) {
      const device = devices.find((d) => d.id === agent.deviceId);
      expect(device?.models.find((m) => m.active)).toMatchObject({ name: 'tiny', version: '1.0.0' });
    }
    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'dashboard-rollout.png'), fullPage: true });
    await page.close();
    expect(cspViolations).toEqual([]);
  }, 180_000);

  it('logs in, shows the agents online, then one offline when its agent stops', async () => {
    const { page, cspViolations } = await signedInPage();

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
    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'dashboard.png'), fullPage: true });
    await page.close();
    expect(cspViolations).toEqual([]);
  });
});
