import type { ModelAssignment, ModelVersion, Rollout, RolloutSummary } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import Database from 'better-sqlite3';
import { getTasks } from 'node-cron';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ASSIGN_SLICE } from '../src/rollouts/rollout-runner.js';
import { eventually, useTestHub } from './hub-harness.js';
import { installedOf, rolloutTestApi, type SimDevice } from './rollout-devices.js';

describe('staged rollouts over MQTT', () => {
  const t = useTestHub();
  let v1: ModelVersion;
  let v2: ModelVersion;

  beforeAll(async () => {
    v1 = (await t.api<ModelVersion>('POST', '/api/v1/models/clf/versions?version=1', buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 }))).body;
    v2 = (await t.api<ModelVersion>('POST', '/api/v1/models/clf/versions?version=2', buildMlp({ inputSize: 4, hidden: [3], outputSize: 2 }))).body;
  });

  const { devices, create, get, until, rowOf, onV1 } = rolloutTestApi(t);
  const clfCount = (sim: SimDevice, rolloutId: string) => sim.docs.filter((d) => d.models.some((m) => m.rolloutId === rolloutId)).length;
  /** A window that opens once a year (January 1st, 00:00): closed while the test runs, until the test opens it. */
  const CLOSED_WINDOW = { cron: '0 0 1 1 *', durationMinutes: 1 };
  /** Fires the rollout's own node-cron task now, as the clock would when the window's time comes. */
  async function openWindow(rolloutId: string): Promise<void> {
    const task = [...getTasks().values()].find((x) => x.name === `rollout-window-${rolloutId}`);
    if (!task) throw new Error(`no maintenance-window task for rollout ${rolloutId}`);
    await task.execute();
  }

  it('refuses unknown models, empty targets, waves short of the target and a bad window', async () => {
    const [d, e] = await devices(2, { ring: 'refuse' });
    expect((await create({ model: 'nope', version: '1', target: { all: true } })).status).toBe(404);
    expect((await create({ model: 'clf', version: '1', target: { labels: { ring: 'none' } } })).status).toBe(400);
    expect((await create({ model: 'clf', version: '1', target: { labels: {} } })).status).toBe(400);
    const short = await create({ model: 'clf', version: '1', target: { labels: { ring: 'refuse' } }, waves: [{ size: 1 }] });
    expect(short.status).toBe(400);
    expect(JSON.stringify(short.body)).toMatch(/must cover the whole target/);
    const cron = await create({ model: 'clf', version: '1', target: { deviceIds: [d!.id] }, maintenanceWindow: { cron: 'every night', durationMinutes: 30 } });
    expect(cron.status).toBe(400);
    expect(JSON.stringify(cron.body)).toMatch(/not a valid cron expression/);
    const seconds = await create({ model: 'clf', version: '1', target: { deviceIds: [d!.id] }, maintenanceWindow: { cron: '*/5 * * * * *', durationMinutes: 30 } });
    expect(seconds.status).toBe(400);
    expect(JSON.stringify(seconds.body)).toMatch(/seconds field/);
    const blind = await create({ model: 'clf', version: '1', target: { deviceIds: [d!.id] }, waves: [{ size: '100%', gates: { maxP99Ratio: 1.5 } }] });
    expect(blind.status).toBe(400);
    expect(JSON.stringify(blind.body)).toMatch(/waves\[0\]\.gates\.maxP99Ratio needs waves\[0\]\.bakeSec > 0/);
    expect((await t.api<{ rollouts: RolloutSummary[] }>('GET', '/api/v1/rollouts')).body.rollouts).toEqual([]);
    await Promise.all([d!.close(), e!.close()]);
  });

  it('runs waves in order under the download limit and shows each wave its gate results', async () => {
    const sims = await devices(5);
    const res = await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, waves: [{ size: 1 }, { size: '100%' }], maxConcurrentDownloads: 2 });
    expect(res.status).toBe(201);
    const id = res.body.id;
    expect(res.body).toMatchObject({ state: 'running', settings: { maxConcurrentDownloads: 2, deviceTimeoutSec: 900 }, counts: { assigned: 1, pending: 4 } });
    expect(res.body.waves.map((w) => [w.state, w.devices.length])).toEqual([
      ['running', 1],
      ['pending', 4],
    ]);
    const first = await sims[0]!.assigned('clf', id);
    expect(first.manifest).toEqual(v2.manifest);
    expect(rowOf(res.body, sims[0]!.id)).toMatchObject({ from: null, to: { model: 'clf', version: '2', sha256: v2.sha256 } });
    await sims[0]!.switchTo(first);

    // Wave 1 (4 devices) fills two download slots; a device past loading frees its slot.
    let r = await until(id, (x) => x.waves[1]!.state === 'running' && (x.counts.assigned ?? 0) === 2, 'wave 1 with two slots taken');
    expect(r.counts).toMatchObject({ active: 1, assigned: 2, waiting: 2 });
    expect(r.waves[0]!.state).toBe('passed');
    expect(r.waves[0]!.gates.map((g) => [g.gate, g.status])).toEqual([
      ['failure-share', 'passed'],
      ['success-share', 'passed'],
    ]);
    const [a, b] = [await sims[1]!.assigned('clf', id), await sims[2]!.assigned('clf', id)];
    await sims[1]!.event(a, 'downloading', { progress: 0.5 });
    r = await until(id, (x) => rowOf(x, sims[1]!.id).progress === 0.5, 'download progress');
    expect(r.counts.assigned).toBe(1);
    expect(clfCount(sims[3]!, id)).toBe(0);
    await sims[1]!.event(a, 'health-check');
    const c = await sims[3]!.assigned('clf', id);
    r = await get(id);
    expect(r.counts).toMatchObject({ 'health-check': 1, assigned: 2, waiting: 1 });

    await Promise.all([sims[1]!.switchTo(a), sims[2]!.switchTo(b), sims[3]!.switchTo(c)]);
    await sims[4]!.switchTo(await sims[4]!.assigned('clf', id));
    r = await until(id, (x) => x.state === 'succeeded', 'succeeded');
    expect(r.counts).toEqual({ active: 5 });
    expect(r.waves.map((w) => w.state)).toEqual(['passed', 'passed']);
    expect(r.waves[1]!.gates.find((g) => g.gate === 'success-share')!.message).toBe('4 of 4 reachable devices active (1.00 ≥ 1.00 required)');
    const list = (await t.api<{ rollouts: RolloutSummary[] }>('GET', '/api/v1/rollouts')).body.rollouts;
    expect(list[0]).toMatchObject({ id, state: 'succeeded' });
    expect(list[0]).not.toHaveProperty('waves');
    await Promise.all(sims.map((s) => s.close()));
  });

  it('keeps a transient failure retrying and lets reported active win, across a hub restart (the false "failed")', async () => {
    const [d] = await devices(1);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: [d!.id] } })).body.id;
    const a = await d!.assigned('clf', id);
    await d!.event(a, 'downloading', { progress: 0.2 });
    await d!.event(a, 'failed', { retryable: true, code: 'UNAVAILABLE', message: 'artifact download failed after 6 attempts' });
    let r = await until(id, (x) => rowOf(x, d!.id).state === 'retrying', 'retrying');
    expect(r.state).toBe('running');
    expect(rowOf(r, d!.id).error).toBe('UNAVAILABLE: artifact download failed after 6 attempts');
    const version = d!.latest()!.version;

    await d!.close();
    await t.restart();
    await d!.connect(t);
    await eventually(() => d!.docs.length > 0 && d!.latest()!.version === version, 'retained desired after restart');
    await d!.switchTo(a);
    r = await until(id, (x) => x.state === 'succeeded', 'succeeded after restart');
    expect(rowOf(r, d!.id)).toMatchObject({ state: 'active', error: null, progress: 1 });
    expect(d!.latest()!.version).toBe(version);
    await d!.close();
  });

  it('halts at a failed gate with its numbers and, with autoRollback, returns every assigned device to its previous version', async () => {
    const sims = await devices(3);
    const old = await onV1(sims);
    const res = await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, waves: [{ size: 2 }, { size: '100%' }], autoRollback: true });
    const id = res.body.id;
    expect(rowOf(res.body, sims[0]!.id).from).toEqual({ model: 'clf', version: '1', profile: 'fp32', sha256: v1.sha256 });
    const a = await sims[0]!.assigned('clf', id);
    const b = await sims[1]!.assigned('clf', id);
    await sims[0]!.switchTo(a, old[0]);
    await sims[1]!.event(b, 'failed', { code: 'GOLDEN_MISMATCH', message: 'output differs by 0.3' });

    let r = await until(id, (x) => x.state !== 'running', 'halted');
    expect(r.state).toBe('rolling-back');
    expect(r.reason).toMatchObject({ wave: 0, gate: 'failure-share', message: '1 of 2 devices failed (0.50 > 0.00 allowed)' });
    expect(r.waves.map((w) => w.state)).toEqual(['halted', 'cancelled']);
    // Device 1 never switched: its report already shows v1, so it is back at once; device 2 is not assigned at all.
    expect(rowOf(r, sims[1]!.id)).toMatchObject({ state: 'rolled-back' });
    expect(rowOf(r, sims[2]!.id)).toMatchObject({ state: 'cancelled' });
    expect(clfCount(sims[2]!, id)).toBe(0);
    const back = await sims[0]!.assigned('clf', id, (x) => x.manifest.manifest.version === '1');
    expect(back.manifest).toEqual(v1.manifest);
    await sims[1]!.assigned('clf', id, (x) => x.manifest.manifest.version === '1');
    expect(rowOf(r, sims[0]!.id).state).toBe('rolling-back');

    await sims[0]!.event(back, 'active');
    await sims[0]!.report([installedOf(back, true), installedOf(a, false)]);
    r = await until(id, (x) => x.state === 'rolled-back', 'rolled back');
    expect(r.reason!.gate).toBe('failure-share');
    expect(r.counts).toEqual({ 'rolled-back': 2, cancelled: 1 });
    await Promise.all(sims.map((s) => s.close()));
  });

  it('halts on the error-rate gate from telemetry, naming the numbers', async () => {
    const [d] = await devices(1);
    const [old] = await onV1([d!]);
    const stats = (version: string, requests: number, errors: number) => ({ name: 'clf', version, requests, errors, latencyMs: { p50: 2, p90: 3, p99: 4 } });
    await d!.telemetry([stats('1', 0, 0)]);
    await d!.telemetry([stats('1', 100, 0)]);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: [d!.id] }, waves: [{ size: '100%', bakeSec: 2, gates: { maxErrorRateIncrease: 0.05 } }] })).body.id;
    const a = await d!.assigned('clf', id);
    await d!.switchTo(a, old);
    await d!.telemetry([stats('1', 100, 0), stats('2', 100, 50)]);
    const r = await until(id, (x) => x.state !== 'running', 'judged after bake', );
    expect(r.state).toBe('halted');
    expect(r.reason).toMatchObject({ wave: 0, gate: 'error-rate' });
    expect(r.reason!.message).toMatch(/error rate 0\.50 on 1 device vs 0\.00 before/);
    expect(r.waves[0]!.gates.find((g) => g.gate === 'error-rate')).toMatchObject({ status: 'failed', observed: 0.5, baseline: 0 });
    // Without autoRollback the device keeps the new version until an operator decides.
    expect(d!.assignment('clf')!.manifest.manifest.version).toBe('2');
    const rolled = await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/rollback`);
    expect(rolled.body.state).toBe('rolling-back');
    await d!.assigned('clf', id, (x) => x.manifest.manifest.version === '1');
    await d!.close();
  }, 20_000);

  it('passes the shadow, health-window and defer settings to devices and halts on low shadow agreement', async () => {
    const [d] = await devices(1);
    const shadowSpec = { sampleRate: 0.5, minSamples: 10 };
    const healthWindow = { durationSec: 30, maxErrorRate: 0.2 };
    const id = (
      await create({ model: 'clf', version: '2', target: { deviceIds: [d!.id] }, waves: [{ size: '100%', gates: { minShadowAgreement: 0.95 } }], shadow: shadowSpec, healthWindow, maxDeferSec: 120 })
    ).body.id;
    const a = await d!.assigned('clf', id);
    expect(a).toMatchObject({ shadow: shadowSpec, healthWindow, maxDeferSec: 120 });
    expect(a).not.toHaveProperty('activate');
    const shadow = { samples: 10, agreement: 0.9, maxAbsDiff: 0.2, activeP50Ms: 1, candidateP50Ms: 1.5 };
    await d!.event(a, 'shadow', { progress: 1, shadow });
    await d!.switchTo(a);
    const r = await until(id, (x) => x.state !== 'running', 'judged');
    expect(r.state).toBe('halted');
    expect(rowOf(r, d!.id)).toMatchObject({ state: 'active', shadow });
    expect(r.reason).toMatchObject({ gate: 'shadow-agreement', message: expect.stringMatching(/lowest shadow agreement 0\.90 over 10 samples \(< 0\.95 required\)/) });
    await d!.close();
  });

  it('answers actions in the wrong state with 409, resumes past a halt, and 404s unknown rollouts', async () => {
    const sims = await devices(2);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, waves: [{ size: 1 }, { size: '100%' }] })).body.id;
    await sims[0]!.event(await sims[0]!.assigned('clf', id), 'failed', { code: 'GOLDEN_MISMATCH', message: 'bad' });
    let r = await until(id, (x) => x.state === 'halted', 'halted');
    expect(r.reason).toMatchObject({ gate: 'failure-share', message: '1 of 1 device failed (1.00 > 0.00 allowed)' });
    const pause = await t.api<{ code: string; error: string }>('POST', `/api/v1/rollouts/${id}/pause`);
    expect(pause.status).toBe(409);
    expect(pause.body).toMatchObject({ code: 'CONFLICT', error: expect.stringMatching(/is halted: pause applies only to a running rollout/) });
    expect((await t.api('POST', `/api/v1/rollouts/${id}/resume`)).status).toBe(200);
    await sims[1]!.switchTo(await sims[1]!.assigned('clf', id));
    r = await until(id, (x) => x.state === 'succeeded', 'succeeded after resume');
    expect(r.waves[0]!.gates.find((g) => g.gate === 'failure-share')!.status).toBe('failed');
    expect((await t.api('POST', `/api/v1/rollouts/${id}/abort`)).status).toBe(409);
    expect((await t.api('POST', `/api/v1/rollouts/${id}/resume`)).status).toBe(409);
    expect((await t.api('POST', '/api/v1/rollouts/ro-nope/rollback')).status).toBe(404);
    expect((await t.api('GET', '/api/v1/rollouts/ro-nope')).status).toBe(404);
    const paths = Object.keys((await t.api<{ paths: Record<string, unknown> }>('GET', '/api/v1/openapi.json')).body.paths);
    for (const action of ['pause', 'resume', 'abort', 'rollback']) expect(paths).toContain(`/api/v1/rollouts/{id}/${action}`);
    await Promise.all(sims.map((s) => s.close()));
  });

  it('stops assigning while paused; abort returns unswitched devices to their previous state and keeps switched ones', async () => {
    const sims = await devices(3);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, maxConcurrentDownloads: 1 })).body.id;
    const a = await sims[0]!.assigned('clf', id);
    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/pause`)).body).toMatchObject({ state: 'paused', reason: { message: 'paused by an operator' } });
    await sims[0]!.switchTo(a);
    let r = await until(id, (x) => rowOf(x, sims[0]!.id).state === 'active', 'first active while paused');
    expect(r.counts).toMatchObject({ active: 1, waiting: 2 });
    expect(clfCount(sims[1]!, id)).toBe(0);
    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/resume`)).body.state).toBe('running');
    await sims[1]!.assigned('clf', id);
    r = (await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/abort`)).body;
    expect(r.state).toBe('aborted');
    expect(r.counts).toEqual({ active: 1, cancelled: 2 });
    // From was nothing: the model leaves the device's desired document again.
    await eventually(() => sims[1]!.assignment('clf') === undefined, 'model removed from the unswitched device');
    expect(sims[0]!.assignment('clf')!.rolloutId).toBe(id);
    expect(clfCount(sims[2]!, id)).toBe(0);
    await Promise.all(sims.map((s) => s.close()));
  });

  it('continues after a hub restart without assigning any device twice', async () => {
    const sims = await devices(3);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, maxConcurrentDownloads: 1 })).body.id;
    const a = await sims[0]!.assigned('clf', id);
    const before = sims.map((s) => s.latest()?.version ?? 0);
    await Promise.all(sims.map((s) => s.close()));
    await t.restart();
    for (const s of sims) await s.connect(t);
    await eventually(() => sims.every((s, i) => (s.latest()?.version ?? 0) === before[i]), 'retained desired after restart');
    let r = await get(id);
    expect(r.counts).toMatchObject({ assigned: 1, waiting: 2 });
    await sims[0]!.switchTo(a);
    await sims[1]!.switchTo(await sims[1]!.assigned('clf', id));
    await sims[2]!.switchTo(await sims[2]!.assigned('clf', id));
    r = await until(id, (x) => x.state === 'succeeded', 'succeeded');
    // One document per assignment: the restart republished, it did not assign again.
    expect(sims.map((s) => new Set(s.docs.filter((d) => d.models.some((m) => m.rolloutId === id)).map((d) => d.version)).size)).toEqual([1, 1, 1]);
    await Promise.all(sims.map((s) => s.close()));
  });

  it('gives devices in flight a fresh deadline when the hub restarts: they could not report while it was down', async () => {
    const [d] = await devices(1);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: [d!.id] }, deviceTimeoutSec: 60 })).body.id;
    const a = await d!.assigned('clf', id);
    await d!.event(a, 'downloading', { progress: 0.5 });
    await until(id, (x) => rowOf(x, d!.id).state === 'downloading', 'downloading');
    await d!.close();
    await t.hub.stop();
    // The outage outlasted the deadline: the stored one is in the past when the hub starts again.
    const db = new Database(join(t.dataDir, 'hub.db'));
    try {
      db.prepare('UPDATE rollout_devices SET deadline = ? WHERE rollout_id = ?').run(Date.now() - 1, id);
    } finally {
      db.close();
    }
    await t.restart();
    // start() ticked already: without a fresh deadline the row would be timed out before the device is back.
    expect(rowOf(await get(id), d!.id).state).toBe('downloading');
    const deadline = new Database(join(t.dataDir, 'hub.db'), { readonly: true });
    try {
      expect(deadline.prepare('SELECT deadline FROM rollout_devices WHERE rollout_id = ?').pluck().get(id)).toBeGreaterThan(Date.now() + 50_000);
    } finally {
      deadline.close();
    }
    await d!.connect(t);
    await d!.switchTo(await d!.assigned('clf', id));
    const r = await until(id, (x) => x.state === 'succeeded', 'succeeded after the outage');
    expect(r.counts).toEqual({ active: 1 });
    await d!.close();
  });

  it('stores each distinct manifest of a rollout once, not one copy per device row', async () => {
    const sims = await devices(3);
    const old = await onV1(sims);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) } })).body.id;
    const given = await Promise.all(sims.map((s) => s.assigned('clf', id)));
    for (const a of given) expect(a.manifest).toEqual(v2.manifest);
    const db = new Database(join(t.dataDir, 'hub.db'), { readonly: true });
    try {
      // v2 (what the rows get) and v1 (what a rollback writes back), each once for the three rows.
      const stored = db.prepare('SELECT sha256, manifest FROM rollout_manifests WHERE rollout_id = ? ORDER BY sha256').all(id) as Array<{ sha256: string; manifest: string }>;
      expect(stored.map((m) => m.sha256)).toEqual([v1.sha256, v2.sha256].sort());
      expect(JSON.parse(stored.find((m) => m.sha256 === v2.sha256)!.manifest)).toEqual(v2.manifest);
      const rows = db.prepare('SELECT to_manifest_sha256 AS too, from_manifest_sha256 AS fro FROM rollout_devices WHERE rollout_id = ?').all(id);
      expect(rows).toEqual(sims.map(() => ({ too: v2.sha256, fro: v1.sha256 })));
    } finally {
      db.close();
    }
    // The stored `from` manifest is what the rollback sends.
    await t.api('POST', `/api/v1/rollouts/${id}/rollback`);
    const back = await Promise.all(sims.map((s) => s.assigned('clf', id, (a) => a.manifest.manifest.version === '1')));
    for (const [i, a] of back.entries()) expect(a.manifest).toEqual(old[i]!.manifest);
    await Promise.all(sims.map((s, i) => s.switchTo(back[i]!)));
    await until(id, (x) => x.state === 'rolled-back', 'rolled back');
    await Promise.all(sims.map((s) => s.close()));
  });

  it('lists the newest rollouts up to ?limit (50 unless asked, at most 500) with their counts', async () => {
    const [a, b] = await devices(2);
    const older = (await create({ model: 'clf', version: '1', target: { deviceIds: [a!.id, b!.id] } })).body.id;
    const newer = (await create({ model: 'clf', version: '2', target: { deviceIds: [a!.id] } })).body.id;
    const list = async (query: string) => t.api<{ rollouts: RolloutSummary[] }>('GET', `/api/v1/rollouts${query}`);
    const two = (await list('?limit=2')).body.rollouts;
    expect(two.map((r) => [r.id, r.counts])).toEqual([
      [newer, { assigned: 1 }],
      [older, { assigned: 1, superseded: 1 }],
    ]);
    const all = (await list('')).body.rollouts;
    expect(all.slice(0, 2).map((r) => r.id)).toEqual([newer, older]);
    expect(all.length).toBeLessThanOrEqual(50);
    expect((await list('?limit=0')).status).toBe(400);
    expect((await list('?limit=501')).status).toBe(400);
    expect((await list('?limit=500')).status).toBe(200);
    for (const id of [newer, older]) await t.api('POST', `/api/v1/rollouts/${id}/abort`);
    await Promise.all([a!.close(), b!.close()]);
  });

  it('times out a silent device without blocking its wave; it converges when it reports later', async () => {
    const sims = await devices(2);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, deviceTimeoutSec: 1 })).body.id;
    await sims[0]!.switchTo(await sims[0]!.assigned('clf', id));
    const late = await sims[1]!.assigned('clf', id);
    let r = await until(id, (x) => x.state === 'succeeded', 'succeeded with a device timed out');
    expect(rowOf(r, sims[1]!.id)).toMatchObject({ state: 'timed-out', error: expect.stringMatching(/not done 1 s after its assignment/) });
    expect(r.waves[0]!.gates.find((g) => g.gate === 'success-share')!.message).toMatch(/1 of 1 reachable device active.*1 timed out/);
    await sims[1]!.switchTo(late);
    r = await until(id, (x) => rowOf(x, sims[1]!.id).state === 'active', 'late device active');
    expect(r.counts).toEqual({ active: 2 });
    await Promise.all(sims.map((s) => s.close()));
  });

  it('prepares devices while the maintenance window is closed and switches them when it opens', async () => {
    const [d] = await devices(1);
    const res = await create({ model: 'clf', version: '2', target: { deviceIds: [d!.id] }, maintenanceWindow: CLOSED_WINDOW });
    const id = res.body.id;
    expect(res.body).toMatchObject({ windowOpenUntil: null, settings: { maintenanceWindow: { durationMinutes: 1 } } });
    const prepare = await d!.assigned('clf', id);
    expect(prepare.activate).toBe(false);
    await d!.event(prepare, 'ready');
    await until(id, (x) => rowOf(x, d!.id).state === 'ready', 'ready, waiting for the window');
    await openWindow(id);
    const go = await d!.assigned('clf', id, (a) => a.activate === true);
    expect((await get(id)).windowOpenUntil).not.toBeNull();
    await d!.switchTo(go);
    await until(id, (x) => x.state === 'succeeded', 'switched in the window');
    await d!.close();
  });

  it('does not switch the devices of a paused rollout when its maintenance window opens; resuming inside the window does', async () => {
    const [d] = await devices(1);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: [d!.id] }, maintenanceWindow: CLOSED_WINDOW })).body.id;
    const prepare = await d!.assigned('clf', id);
    expect(prepare.activate).toBe(false);
    await d!.event(prepare, 'ready');
    await until(id, (x) => rowOf(x, d!.id).state === 'ready', 'ready, waiting for the window');
    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/pause`)).body.state).toBe('paused');
    await openWindow(id);
    await until(id, (x) => x.windowOpenUntil !== null, 'window open while paused');
    // The document the opening would have rewritten is in SQLite, written in the same transaction as the window's end.
    const db = new Database(join(t.dataDir, 'hub.db'), { readonly: true });
    try {
      const doc = JSON.parse(db.prepare('SELECT payload FROM desired WHERE device_id = ?').pluck().get(d!.id) as string) as { models: ModelAssignment[] };
      expect(doc.models.find((m) => m.rolloutId === id)!.activate).toBe(false);
    } finally {
      db.close();
    }
    expect(d!.docs.some((doc) => doc.models.some((m) => m.rolloutId === id && m.activate === true))).toBe(false);
    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/resume`)).body.state).toBe('running');
    await d!.switchTo(await d!.assigned('clf', id, (a) => a.activate === true));
    await until(id, (x) => x.state === 'succeeded', 'switched after resuming inside the window');
    await d!.close();
  });

  it('does not keep a maintenance window watched for a rollout that finished as it was created', async () => {
    const [d] = await devices(1);
    await d!.report([{ name: 'clf', version: '2', sha256: v2.sha256, profile: v2.manifest.manifest.profile, active: true }]);
    await eventually(async () => (await t.api<{ models: Array<{ sha256: string }> }>('GET', `/api/v1/devices/${d!.id}`)).body.models.some((m) => m.sha256 === v2.sha256), 'v2 reported');
    const res = await create({ model: 'clf', version: '2', target: { deviceIds: [d!.id] }, maintenanceWindow: { cron: '0 0 1 1 *', durationMinutes: 1 } });
    // The device already runs v2: done at once, so no window task may outlive it (one cron task per rollout, forever).
    expect(res.body.state).toBe('succeeded');
    expect([...getTasks().values()].map((task) => task.name)).not.toContain(`rollout-window-${res.body.id}`);
    await d!.close();
  });

  it('assigns a wave wider than one assignment slice over several transactions, each device once', async () => {
    // A slice per macrotask keeps each turn of the event loop short; the slices together must still assign everyone exactly once.
    const sims = await devices(2 * ASSIGN_SLICE + 3);
    const res = await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, maxConcurrentDownloads: 100 });
    expect(res.status).toBe(201);
    expect(res.body.counts).toMatchObject({ assigned: ASSIGN_SLICE, waiting: sims.length - ASSIGN_SLICE });
    const id = res.body.id;
    await until(id, (x) => x.counts.assigned === sims.length, 'every device assigned');
    const given = await Promise.all(sims.map((s) => s.assigned('clf', id)));
    await Promise.all(sims.map((s, i) => s.switchTo(given[i]!)));
    await until(id, (x) => x.state === 'succeeded', 'succeeded');
    expect(sims.map((s) => clfCount(s, id))).toEqual(sims.map(() => 1));
    await Promise.all(sims.map((s) => s.close()));
  });

  it('does not assign a device revoked before its turn: it leaves the rollout instead of holding a download slot until its deadline', async () => {
    const sims = await devices(2);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, maxConcurrentDownloads: 1 })).body.id;
    const first = await sims[0]!.assigned('clf', id);
    expect((await t.api('POST', `/api/v1/devices/${sims[1]!.id}/revoke`)).status).toBe(200);
    await sims[0]!.switchTo(first);
    const r = await until(id, (x) => x.state === 'succeeded', 'succeeded without the revoked device');
    expect(rowOf(r, sims[1]!.id)).toMatchObject({ state: 'cancelled', error: expect.stringMatching(/revoked/), assignedAt: null });
    expect(clfCount(sims[1]!, id)).toBe(0);
    await Promise.all(sims.map((s) => s.close()));
  });

  it('times out a prepared device that stays silent once the maintenance window opens, so its wave completes', async () => {
    const sims = await devices(2);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, deviceTimeoutSec: 1, maintenanceWindow: CLOSED_WINDOW })).body.id;
    for (const s of sims) await s.event(await s.assigned('clf', id), 'ready');
    await until(id, (x) => x.counts.ready === 2, 'both ready, waiting for the window');
    // The window opens: the first switches, the second went offline after preparing.
    await sims[1]!.close();
    await openWindow(id);
    await sims[0]!.switchTo(await sims[0]!.assigned('clf', id, (a) => a.activate === true));
    const r = await until(id, (x) => x.state === 'succeeded', 'succeeded with the silent device timed out');
    expect(rowOf(r, sims[1]!.id)).toMatchObject({ state: 'timed-out', error: expect.stringMatching(/last state: ready/) });
    await sims[0]!.close();
  });

  it('ends a rollback whose offline device does not confirm in time, and converges when the device returns', async () => {
    const sims = await devices(2);
    const old = await onV1(sims);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, deviceTimeoutSec: 3 })).body.id;
    const given = await Promise.all(sims.map((s) => s.assigned('clf', id)));
    await Promise.all(sims.map((s, i) => s.switchTo(given[i]!, old[i])));
    await until(id, (x) => x.state === 'succeeded', 'v2 everywhere');
    const [online, offline] = sims as [SimDevice, SimDevice];
    await offline.close();

    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/rollback`)).body.state).toBe('rolling-back');
    const back = await online.assigned('clf', id, (a) => a.manifest.manifest.version === '1');
    await online.switchTo(back, given[0]);
    let r = await until(id, (x) => x.state === 'rolled-back', 'rolled back without the offline device');
    expect(r.counts).toEqual({ 'rolled-back': 1, 'rolling-back': 1 });
    expect(rowOf(r, offline.id).state).toBe('rolling-back');
    expect(r.reason!.message).toBe(
      'rolled back by an operator; rollback ended with 1 of 2 devices not confirmed back on the previous version within 3 s (it returns to it when it reconnects)',
    );

    // Back online, it first reports the new version it still runs: that does not make the row active.
    await offline.connect(t);
    await offline.report([installedOf(given[1]!, true)]);
    await eventually(async () => (await t.api<{ models: unknown[] }>('GET', `/api/v1/devices/${offline.id}`)).body.models.length === 1, 'report of v2 alone stored');
    expect(rowOf(await get(id), offline.id).state).toBe('rolling-back');
    const retained = await offline.assigned('clf', id, (a) => a.manifest.manifest.version === '1');
    await offline.switchTo(retained, given[1]);
    r = await until(id, (x) => rowOf(x, offline.id).state === 'rolled-back', 'late device back on v1');
    expect(r).toMatchObject({ state: 'rolled-back', counts: { 'rolled-back': 2 } });
    await Promise.all(sims.map((s) => s.close()));
  });

  it('hands a device still rolling back to a newer rollout of the model', async () => {
    const [d] = await devices(1);
    const [old] = await onV1([d!]);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: [d!.id] }, deviceTimeoutSec: 1 })).body.id;
    await d!.switchTo(await d!.assigned('clf', id), old);
    await until(id, (x) => x.state === 'succeeded', 'v2');
    await d!.close();
    await t.api('POST', `/api/v1/rollouts/${id}/rollback`);
    await until(id, (x) => x.state === 'rolled-back', 'rollback ended without the device');
    const newer = (await create({ model: 'clf', version: '1', target: { deviceIds: [d!.id] } })).body;
    expect(rowOf(await get(id), d!.id)).toMatchObject({ state: 'superseded', error: `superseded by rollout ${newer.id}` });
  });

  it('tells devices that have not switched to prepare only when the maintenance window closes', async () => {
    const sims = await devices(3);
    // A daily window that opened this minute: the rollout starts inside it and devices are told to switch.
    const now = new Date();
    const window = { cron: `${now.getMinutes()} ${now.getHours()} * * *`, durationMinutes: 5 };
    const res = await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, maintenanceWindow: window });
    const id = res.body.id;
    expect(res.body.windowOpenUntil).not.toBeNull();
    const [done, busy, locked] = (await Promise.all(sims.map((s) => s.assigned('clf', id)))) as [ModelAssignment, ModelAssignment, ModelAssignment];
    for (const a of [done, busy, locked]) expect(a.activate).toBe(true);
    await sims[0]!.switchTo(done);
    await sims[1]!.event(busy, 'downloading', { progress: 0.4 });
    await sims[2]!.event(locked, 'deferred', { lockReason: 'critical job', deferUntil: Date.now() + 60_000 });
    await until(id, (x) => rowOf(x, sims[0]!.id).state === 'active' && rowOf(x, sims[1]!.id).state === 'downloading' && rowOf(x, sims[2]!.id).state === 'deferred', 'switched, downloading, deferred');
    const before = sims.map((s) => s.latest()!.version);

    // The window's end comes early: the stored end is moved to the past, as if five minutes had gone by.
    const db = new Database(join(t.dataDir, 'hub.db'));
    try {
      db.prepare('UPDATE rollouts SET window_open_until = ? WHERE id = ?').run(Date.now() - 1, id);
    } finally {
      db.close();
    }
    const held = await Promise.all([sims[1]!, sims[2]!].map((s) => s.assigned('clf', id, (a) => a.activate === false)));
    for (const a of held) expect(a.manifest).toEqual(v2.manifest);
    const r = await until(id, (x) => x.windowOpenUntil === null && rowOf(x, sims[2]!.id).state === 'ready', 'window closed');
    // The deferred device waits for the next window now (untimed, like a ready one); the others are untouched.
    expect(r.counts).toEqual({ active: 1, downloading: 1, ready: 1 });
    expect(r.state).toBe('running');
    expect(sims[0]!.latest()!.version).toBe(before[0]);
    expect(sims[0]!.assignment('clf')!.activate).toBe(true);
    await Promise.all(sims.map((s) => s.close()));
  });

  it('supersedes the unfinished rows of an older rollout of the same model; a late event does not reopen them', async () => {
    const [d] = await devices(1);
    const old = (await create({ model: 'clf', version: '1', target: { deviceIds: [d!.id] } })).body;
    const a = await d!.assigned('clf', old.id);
    const newer = (await create({ model: 'clf', version: '2', target: { deviceIds: [d!.id] } })).body;
    await d!.assigned('clf', newer.id);
    await d!.event(a, 'active');
    const r = await get(old.id);
    expect(rowOf(r, d!.id)).toMatchObject({ state: 'superseded', error: `superseded by rollout ${newer.id}` });
    expect(r.state).toBe('succeeded');
    await d!.close();
  });

  it('runs through an empty wave (a size no larger than the one before) and answers every action on it', async () => {
    const sims = await devices(2);
    const id = (await create({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, waves: [{ size: 1 }, { size: 1 }, { size: '100%' }] })).body.id;
    const first = await sims[0]!.assigned('clf', id);
    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/pause`)).body.state).toBe('paused');
    expect((await t.api<Rollout>('POST', `/api/v1/rollouts/${id}/resume`)).body.state).toBe('running');
    await sims[0]!.switchTo(first);
    await sims[1]!.switchTo(await sims[1]!.assigned('clf', id));
    const r = await until(id, (x) => x.state === 'succeeded', 'succeeded through the empty wave');
    expect(r.waves.map((w) => [w.state, w.devices.length])).toEqual([['passed', 1], ['passed', 0], ['passed', 1]]);
    expect(r.waves[1]!.gates.find((g) => g.gate === 'success-share')!.message).toBe('no device in this wave');
    await Promise.all(sims.map((s) => s.close()));
  });
});
