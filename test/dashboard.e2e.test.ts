import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CalibrationSummary, Device, Rollout, VariantBuild } from '@edgefleet/shared';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { api, enrollAgent, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { fixtureModelUrl, fixtureSamples } from './fixtures/onnx/fixture-data.mjs';
import { tinyModel } from './support/models.js';
import { killAll, REPO_ROOT } from './support/processes.js';
import { hasTool } from './support/tools.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(REPO_ROOT, 'test/artifacts');
/** Long enough to see (and act on) the first wave baking on a loaded machine, short enough for a test. */
const BAKE_SEC = 8;
/** Every profile the models page lists for a built version (PROFILES in packages/shared/src/api/variants.ts). */
const PROFILES = ['fp32', 'fp16', 'int8-dynamic', 'int8-static', 'int8-weights', 'pruned'];
const BUILD_TIMEOUT = 120_000;
const RATIO = /^\d+\.\d{1,2}x$/;
const PERCENT = /^\d+(\.\d+)? %$/;

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

  // After the presence test: one agent stopped, one online, so the page shows a plan for each and the hub's 409 for the offline one.
  it('shows the variants of a model version with their numbers and chart, its build live, and the plan per device with benchmark answers', async () => {
    const [offline, online] = agents;
    await api(hub, 'POST', '/api/v1/models/mlp/versions?version=2.0.0', new Uint8Array(readFileSync(fixtureModelUrl('torch-mlp'))), 201);
    const samples = fixtureSamples('torch-mlp', 48, 21);
    const calibration = await api<CalibrationSummary>(hub, 'PUT', '/api/v1/models/mlp/versions/2.0.0/calibration', {
      inputs: [
        { name: 'input', datatype: 'FP32', shape: samples.dims, data: Array.from(samples.input) },
        { name: 'labels', datatype: 'INT32', shape: [48], data: Array.from(samples.labels!) },
      ],
    });
    expect(calibration).toMatchObject({ samples: 48, labels: true });
    expect((await api<VariantBuild>(hub, 'POST', '/api/v1/models/mlp/versions/2.0.0/variants', {}, 202)).state).toMatch(/queued|running/);

    const { page, cspViolations } = await signedInPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.locator('[data-nav="models"]').click();
    await page.locator('#model-list [data-model="mlp"] a').click();
    const card = page.locator('[data-model-version]');
    await card.locator('#model-version option[value="2.0.0"]').waitFor({ state: 'attached' });
    expect(await card.locator('#model-version').inputValue()).toBe('2.0.0');
    await card.locator('[data-field="calibration"]', { hasText: '48 samples, labelled' }).waitFor();

    // The page learns of the build's end from the event stream, then shows every profile with its numbers.
    await card.locator('#variant-build[data-build-state="done"]').waitFor({ timeout: BUILD_TIMEOUT });
    await card.locator('#variant-build [data-build-progress="100"]').waitFor();
    const rows = card.locator('#variants tbody tr');
    await vi.waitUntil(async () => (await rows.count()) === PROFILES.length && (await card.locator('#variants tr[data-variant-state="building"]').count()) === 0, { timeout: 10_000, interval: 100 });
    const listed: Array<string | null> = [];
    for (let i = 0; i < PROFILES.length; i++) listed.push(await rows.nth(i).getAttribute('data-profile'));
    expect(listed).toEqual(PROFILES);
    const cell = (profile: string, field: string) => card.locator(`#variants tr[data-profile="${profile}"] [data-field="${field}"]`).innerText();
    expect(await cell('fp32', 'size-ratio')).toBe('1.00x');
    expect(await cell('fp32', 'latency-ratio')).toBe('1.00x');
    for (const profile of PROFILES.slice(1)) {
      const state = await card.locator(`#variants tr[data-profile="${profile}"]`).getAttribute('data-variant-state');
      expect(['accepted', 'rejected'], `${profile} is ${state}`).toContain(state);
      for (const field of ['size-ratio', 'transfer-ratio', 'latency-ratio']) expect(await cell(profile, field), `${profile} ${field}`).toMatch(RATIO);
      for (const field of ['agreement', 'accuracy']) expect(await cell(profile, field), `${profile} ${field}`).toMatch(PERCENT);
      if (profile.startsWith('int8') || profile === 'pruned') expect(await cell(profile, 'quantized-share'), profile).toMatch(PERCENT);
    }
    expect(Number((await cell('int8-static', 'size-ratio')).replace('x', ''))).toBeLessThan(0.5);

    // The chart: one category per profile, bars for each (fp32's are the 1.0 reference).
    const chart = card.locator('#variants-chart');
    expect(await chart.getAttribute('data-profiles')).toBe(PROFILES.join(','));
    expect(await chart.getAttribute('data-bars')).toBe(String(PROFILES.length));
    expect(await chart.locator('canvas').count()).toBe(1);

    // Plans follow the finished build of the model's latest version, for both devices.
    const plans = page.locator('#plans');
    for (const agent of agents) await plans.locator(`tr[data-device-id="${agent.deviceId}"][data-profile]`).waitFor({ timeout: 30_000 });
    for (const agent of agents) {
      const row = plans.locator(`tr[data-device-id="${agent.deviceId}"]`);
      expect(PROFILES).toContain(await row.getAttribute('data-profile'));
      expect(['rule', 'measurement', 'pinned', 'default']).toContain(await row.getAttribute('data-decided-by'));
      expect((await row.locator('.plan-reason').innerText()).length).toBeGreaterThan(0);
    }

    // A redraw of the plans (here for a `device` event: a label set) keeps each row's benchmark button.
    // A rebuilt body swallowed clicks whose mousedown and mouseup straddled a redraw (seen under load in CI).
    const button = await plans.locator(`tr[data-device-id="${offline!.deviceId}"] [data-action="benchmark"]`).elementHandle();
    await api(hub, 'PUT', `/api/v1/devices/${offline!.deviceId}/labels`, { labels: { redraw: 'yes' } });
    await page.locator(`#device-rows tr[data-device-id="${offline!.deviceId}"] [data-label="redraw"]`).waitFor({ state: 'attached', timeout: 10_000 });
    expect(await button!.evaluate((el) => el.isConnected)).toBe(true);

    // Benchmarks: the hub refuses the stopped device (409, shown), and asks the online one.
    await plans.locator(`tr[data-device-id="${offline!.deviceId}"] [data-action="benchmark"]`).click();
    const refused = plans.locator(`tr[data-device-id="${offline!.deviceId}"] [data-benchmark-error]`);
    await refused.waitFor({ timeout: 10_000 });
    expect(await refused.innerText()).toMatch(/\b409\b/);
    await plans.locator(`tr[data-device-id="${online!.deviceId}"] [data-action="benchmark"]`).click();
    await plans.locator(`tr[data-device-id="${online!.deviceId}"] [data-benchmark-sent]`).waitFor({ timeout: 10_000 });

    // A build asked for from the page shows its progress; asking again while it runs shows the hub's 409.
    const buildButton = card.locator('[data-action="build-variants"]');
    await buildButton.click();
    await card.locator('#variant-build:is([data-build-state="queued"], [data-build-state="running"])').waitFor({ timeout: 10_000 });
    await buildButton.click();
    await card.locator('[data-build-request-error]', { hasText: /\b409\b.*already (queued|running)/ }).waitFor({ timeout: 10_000 });
    await card.locator('#variant-build[data-build-state="done"]').waitFor({ timeout: BUILD_TIMEOUT });

    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'dashboard-models.png'), fullPage: true });

    // The session ends (its cookie gone): the next request is refused, the page asks to sign in again
    // without leaving the button "Asking…", and after signing in shows the models afresh (a version
    // uploaded meanwhile is listed).
    await page.context().clearCookies();
    // A refetch that an event (telemetry, plans) triggers may meet the refusal first and bring the
    // sign-in form up before the click; the click is dispatched to the button either way.
    await plans.locator(`tr[data-device-id="${online!.deviceId}"] [data-action="benchmark"]`).dispatchEvent('click');
    await page.locator('#login-error', { hasText: 'Your session has ended' }).waitFor({ timeout: 10_000 });
    const again = plans.locator(`tr[data-device-id="${online!.deviceId}"] [data-action="benchmark"]`);
    expect(await again.textContent()).toBe('Benchmark');
    expect(await again.isDisabled()).toBe(false);
    await api(hub, 'POST', '/api/v1/models/mlp/versions?version=3.0.0', new Uint8Array(readFileSync(fixtureModelUrl('torch-mlp'))), 201);
    await page.locator('#login-form input[name="token"]').fill(hub.adminToken);
    await page.locator('#login-form button[type="submit"]').click();
    await card.locator('#model-version option[value="3.0.0"]').waitFor({ state: 'attached', timeout: 10_000 });
    await page.locator('[data-nav="fleet"]').click();
    await page.locator('#fleet-page').waitFor();
    expect(await page.locator('#models-page').isHidden()).toBe(true);
    await page.close();
    expect(cspViolations).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 300_000);
});
