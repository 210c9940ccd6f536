import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DriftBaseline, DriftMessage, DriftSummary, DriftWebhookBody } from '@edgefleet/shared';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createAlertWebhook } from '../src/drift/alert-webhook.js';
import type { DriftBaselines } from '../src/drift/drift-baselines.js';
import { createDriftService, type DriftServiceDeps } from '../src/drift/drift-service.js';
import { createHubEventBus, type HubEventMap } from '../src/events/hub-event-bus.js';
import { createRecordRepo } from '../src/records/record-repo.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { oneBaseline, prng, referenceBaseline, windowSummary } from './drift-evaluation-fixtures.js';
import { eventually } from './hub-harness.js';

const log = pino({ level: 'silent' });
const MODEL = 'tabular';
const VERSION = '1';
/** Numeric features of different kinds (normal, uniform, integer counts) shifted by one standard deviation. */
const SHIFTED = new Set([0, 7, 13]);
const SHIFTED_NAMES = ['f0', 'f13', 'f7'];

describe('drift evaluation service (real SQLite)', () => {
  let dir: string;
  let baseline: DriftBaseline;
  let testNo = 0;
  /** One seq counter for the file: a reopened database keeps its devices' earlier seqs. */
  let lastSeq = 0;
  const open: Db[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgefleet-drift-'));
    baseline = referenceBaseline(20_000, prng(7));
  });
  afterEach(() => {
    for (const db of open.splice(0)) db.close();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A fresh database with `devices` enrolled, and a sender of drift records through the record store (what ingest commits). */
  function fleet(devices: number, file = join(dir, `hub-${++testNo}.db`)) {
    const db = openDatabase(file, log);
    open.push(db);
    const ids = Array.from({ length: devices }, (_, i) => `dev-${String(i).padStart(2, '0')}`);
    const insert = db.prepare("INSERT OR IGNORE INTO devices (id, name, labels, secret_sha256, enrolled_at) VALUES (?, ?, '{}', 'x', '2026-01-01T00:00:00.000Z')");
    for (const id of ids) insert.run(id, id);
    const records = createRecordRepo(db, 1000);
    const send = (deviceId: string, summary: DriftSummary) => {
      const seq = ++lastSeq;
      const message: DriftMessage = { v: 1, seq, ts: Date.now(), model: MODEL, version: VERSION, summary };
      const result = records.insertBatch([{ deviceId, kind: 'drift', message, payload: JSON.stringify(message) }]);
      expect(result.outcomes).toEqual(['stored']);
    };
    return { db, ids, send, file };
  }

  function service(db: Db, extra: Partial<DriftServiceDeps> & { baselines?: DriftBaselines } = {}) {
    const bus = createHubEventBus(log);
    const events: HubEventMap['drift'][] = [];
    bus.subscribe((name, payload) => {
      if (name === 'drift') events.push(payload as HubEventMap['drift']);
    });
    const drift = createDriftService({ db, baselines: oneBaseline(MODEL, VERSION, baseline), bus, log, minSamples: 500, recordRetentionHours: 48, ...extra });
    return { drift, events };
  }

  it('raises no alert over 100 device windows and 10 fleet windows without drift', async () => {
    const { db, ids, send } = fleet(10);
    const random = prng(101);
    // Chunks of 3 records: a pass's fleet window gathers across its chunks and closes once, at the end.
    const { drift, events } = service(db, { chunkSize: 3 });
    for (let round = 0; round < 10; round++) {
      for (const id of ids) send(id, windowSummary(baseline, 500, random, { start: round * 1000 }));
      // Each device's summary fills its own window; the fleet's window is the whole pass: all 10 devices.
      expect(await drift.evaluate()).toEqual({ summaries: 10, evaluations: 11, raised: 0, cleared: 0 });
    }
    expect(drift.alerts('all')).toEqual([]);
    const view = drift.modelView(MODEL, VERSION, 1000)!;
    expect(view.fleet.map((e) => [e.samples, e.over])).toEqual(Array.from({ length: 10 }, () => [5000, false]));
    expect(view.pendingSamples).toBe(0);
    expect(view.devices.map((d) => d.deviceId).sort()).toEqual(ids);
    expect(view.devices.map((d) => d.score)).toEqual(view.devices.map((d) => d.score).sort((a, b) => b - a));
    expect(db.prepare('SELECT count(*) FROM drift_evaluations WHERE device_id IS NOT NULL').pluck().get()).toBe(100);
    // The bus hears of the fleet's windows only (no alert changed): one event per pass.
    expect(events.map((e) => [e.deviceId, e.alert])).toEqual(Array.from({ length: 10 }, () => [null, undefined]));
  });

  it('raises an alert within two windows of a 1-σ shift in 3 features, naming exactly those 3', async () => {
    const { db, ids, send } = fleet(1);
    const random = prng(202);
    const { drift, events } = service(db);
    for (let i = 0; i < 3; i++) send(ids[0]!, windowSummary(baseline, 500, random));
    // Three device windows, and the pass's 1500 samples as one fleet window.
    expect(await drift.evaluate()).toEqual({ summaries: 3, evaluations: 4, raised: 0, cleared: 0 });
    // Fleet windows are per pass: one shifted summary per pass, so both scopes see a window over per pass.
    send(ids[0]!, windowSummary(baseline, 500, random, { shifted: SHIFTED, shiftSd: 1 }));
    expect(await drift.evaluate()).toEqual({ summaries: 1, evaluations: 2, raised: 0, cleared: 0 });
    send(ids[0]!, windowSummary(baseline, 500, random, { shifted: SHIFTED, shiftSd: 1 }));
    expect(await drift.evaluate()).toEqual({ summaries: 1, evaluations: 2, raised: 2, cleared: 0 });
    const alerts = drift.alerts('active');
    expect(new Set(alerts.map((a) => a.deviceId))).toEqual(new Set([null, ids[0]]));
    for (const alert of alerts) {
      expect(alert.features.map((f) => f.name).sort()).toEqual(SHIFTED_NAMES);
      expect(alert.message).toContain(`drift on ${MODEL}@${VERSION}`);
    }
    expect(alerts.find((a) => a.deviceId === null)?.devices).toEqual([ids[0]]);
    // Per pass: the fleet's window; device windows only when they change an alert (the device's comes first).
    expect(events.map((e) => [e.deviceId, e.over, e.alert])).toEqual([
      [null, false, undefined],
      [null, true, undefined],
      [ids[0], true, 'raised'],
      [null, true, 'raised'],
    ]);
  });

  it('finds the 2 shifted devices of 10: their evaluations are over and the alerts name them', async () => {
    const { db, ids, send } = fleet(10);
    const random = prng(303);
    // Apart in send order: the fleet's window is a whole pass, whichever devices' summaries come when.
    const shiftedDevices = new Set([ids[2]!, ids[7]!]);
    const { drift } = service(db);
    for (let round = 0; round < 2; round++) {
      for (const id of ids) send(id, windowSummary(baseline, 500, random, shiftedDevices.has(id) ? { shifted: SHIFTED, shiftSd: 1 } : {}));
      // Round 2 raises the two devices' alerts and the fleet's (its second window over in a row).
      expect(await drift.evaluate()).toEqual({ summaries: 10, evaluations: 11, raised: round === 0 ? 0 : 3, cleared: 0 });
    }
    const view = drift.modelView(MODEL, VERSION, 10)!;
    expect(view.devices.filter((d) => d.over).map((d) => d.deviceId)).toEqual([...shiftedDevices]);
    for (const row of view.devices.filter((d) => d.over)) expect([...row.drifted].sort()).toEqual(SHIFTED_NAMES);
    const deviceAlerts = drift.alerts('active').filter((a) => a.deviceId !== null);
    expect(deviceAlerts.map((a) => a.deviceId).sort()).toEqual([...shiftedDevices]);
    // Each fleet window merges all 10 devices' 5000 samples, 20 % of them shifted by 1σ. The dilution
    // hides a shift that stays inside the reference's range: the mixture's χ² divergence from the
    // reference is 0.2² · (e^(1σ²) − 1) ≈ 0.07 for the normal f0 (measured PSI ≈ 0.05, f13's counts
    // ≈ 0.04), under the threshold 0.1 + noise ≈ 0.108 at 5000 samples. The uniform f7 is not hidden:
    // 1σ = 0.29 of its range pushes 0.2 · 0.29 ≈ 6 % of the window past the reference's maximum, into the
    // open bin the reference holds empty (PSI ≈ 0.45, score ≈ 4). So the fleet is over on f7 alone.
    expect(view.fleet.map((e) => [e.samples, e.over, e.features.filter((f) => f.drifted).map((f) => f.name)])).toEqual([
      [5000, true, ['f7']],
      [5000, true, ['f7']],
    ]);
    for (const e of view.fleet) expect(e.features.find((f) => f.name === 'f0')!.score).toBeLessThan(1);
    const fleetAlerts = drift.alerts('all').filter((a) => a.deviceId === null);
    expect(fleetAlerts.map((a) => a.state)).toEqual(['active']);
    expect(fleetAlerts[0]!.features.map((f) => f.name)).toEqual(['f7']);
    expect(fleetAlerts[0]!.devices).toEqual([...shiftedDevices]);
    expect(fleetAlerts[0]!.message).toContain(`devices over: ${[...shiftedDevices].join(', ')}`);
    // Windows ended at 1000 (the fixtures' device clock): a device that switched before counts, one that switched after does not (yet).
    const scores = drift.driftScores(MODEL, VERSION, ids.map((deviceId) => ({ deviceId, since: 999 })));
    expect(ids.filter((id) => (scores.get(id) ?? 0) > 1)).toEqual([...shiftedDevices]);
    expect(drift.driftScores(MODEL, VERSION, ids.map((deviceId) => ({ deviceId, since: 1000 }))).size).toBe(0);
    expect(view.devicesEvaluated).toBe(10);
    expect(view.devicesOver).toBe(2);
    // Devices over first, then by score; a smaller page keeps that order.
    expect(drift.modelView(MODEL, VERSION, 10, 2)!.devices.map((d) => d.deviceId).sort()).toEqual([...shiftedDevices]);
  });

  describe('webhook', () => {
    let server: Server;
    const received: DriftWebhookBody[] = [];
    let failFirst = 0;
    beforeAll(async () => {
      server = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          if (failFirst > 0) {
            failFirst--;
            res.writeHead(503).end();
            return;
          }
          received.push(JSON.parse(body) as DriftWebhookBody);
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    });
    afterAll(async () => {
      await new Promise((r) => server.close(r));
    });

    it('receives the raised and the cleared alert, retrying a failed delivery', async () => {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const webhook = createAlertWebhook({ url, log, backoffMs: 10 });
      const { db, ids, send } = fleet(1);
      const random = prng(404);
      // One device, scopes device and fleet both raise: keep the fleet's apart by its deviceId null.
      const { drift } = service(db, { webhook });
      failFirst = 1;
      // A summary per pass: a fleet window is a pass's summaries, so two windows take two passes.
      const passes: Array<{ raised: number; cleared: number }> = [];
      for (const shifted of [true, true, false, false]) {
        send(ids[0]!, windowSummary(baseline, 500, random, shifted ? { shifted: SHIFTED, shiftSd: 1 } : {}));
        const { raised, cleared } = await drift.evaluate();
        passes.push({ raised, cleared });
      }
      expect(passes).toEqual([{ raised: 0, cleared: 0 }, { raised: 2, cleared: 0 }, { raised: 0, cleared: 0 }, { raised: 0, cleared: 2 }]);
      await eventually(() => received.length === 4, 'four webhook deliveries');
      const fleetBodies = received.filter((b) => b.alert.deviceId === null);
      expect(fleetBodies.map((b) => [b.type, b.alert.state])).toEqual([['drift.alert.raised', 'active'], ['drift.alert.cleared', 'cleared']]);
      expect(fleetBodies[0]?.alert.features.map((f) => f.name).sort()).toEqual(SHIFTED_NAMES);
      expect(webhook.counters).toMatchObject({ sent: 4, failed: 0, retried: 1 });
      await webhook.stop();
    });

    it('refuses a webhook URL that is not http or https', () => {
      expect(() => createAlertWebhook({ url: 'ftp://example.com/x', log })).toThrow(/expected http:\/\/ or https:\/\//);
    });
  });

  it('keeps its cursor across a restart and after a failed chunk: no record counted twice or lost', async () => {
    const { db, ids, send, file } = fleet(3);
    const random = prng(505);
    const summaries = Array.from({ length: 12 }, (_, i) => windowSummary(baseline, 250, random, { start: i * 1000 }));
    summaries.slice(0, 6).forEach((s, i) => send(ids[i % 3]!, s));
    // A pass that fails part-way (the baseline lookup throws in its third chunk): the first two chunks stay committed.
    let lookups = 0;
    const real = oneBaseline(MODEL, VERSION, baseline);
    const failing: DriftBaselines = { ...real, get: (m, v) => (++lookups === 5 ? (() => { throw new Error('crash'); })() : real.get(m, v)) };
    await expect(service(db, { baselines: failing, chunkSize: 2, chunkBudgetMs: 60_000 }).drift.evaluate()).rejects.toThrow('crash');
    const cursorAfterCrash = db.prepare('SELECT last_record FROM drift_cursor').pluck().get() as number;
    expect(cursorAfterCrash).toBe(4);
    // The committed chunks' 4 summaries wait in the fleet's pending window (it closes only at a pass's end).
    expect(db.prepare("SELECT samples FROM drift_pending WHERE scope = ''").pluck().all()).toEqual([1000]);
    db.close();
    open.splice(open.indexOf(db), 1);

    const again = fleet(3, file);
    summaries.slice(6).forEach((s, i) => again.send(ids[i % 3]!, { ...s }));
    // Records 5–12: five device windows (the failed pass closed device 0's first) and the fleet's one.
    expect(await service(again.db).drift.evaluate()).toEqual({ summaries: 8, evaluations: 6, raised: 0, cleared: 0 });
    expect(await service(again.db).drift.evaluate()).toEqual({ summaries: 0, evaluations: 0, raised: 0, cleared: 0 });
    // 12 summaries of 250, each counted once: one fleet window of all 3000 samples (the failed pass never
    // reached its end, so its 1000 were carried over), and each device's 4 summaries as 2 windows.
    const fleetRows = again.db.prepare('SELECT samples FROM drift_evaluations WHERE device_id IS NULL').pluck().all();
    expect(fleetRows).toEqual([3000]);
    expect(again.db.prepare('SELECT device_id, samples FROM drift_evaluations WHERE device_id IS NOT NULL ORDER BY device_id, id').raw().all()).toEqual(
      ids.flatMap((id) => [[id, 500], [id, 500]]),
    );
    expect(again.db.prepare('SELECT count(*) FROM drift_pending').pluck().get()).toBe(0);
  });

  it('prunes evaluated records by arrival, whatever their devices\' clocks say, and a scope\'s evaluations past the newest kept', async () => {
    const { db, ids, send } = fleet(1);
    const random = prng(707);
    // The first record claims to come from a year ahead: pruning by the device's clock would keep it, and all after it, for good.
    send(ids[0]!, windowSummary(baseline, 500, random));
    db.prepare('UPDATE drift SET ts = ? WHERE id = (SELECT min(id) FROM drift)').run(Date.now() + 365 * 24 * 3600_000);
    for (let i = 0; i < 2; i++) send(ids[0]!, windowSummary(baseline, 500, random));
    let clock = Date.now();
    const { drift } = service(db, { now: () => clock, recordRetentionHours: 6 });
    // Three device windows and the pass's fleet window; nothing is 6 hours old yet.
    expect((await drift.evaluate()).evaluations).toBe(4);
    const cursor = drift.repo.cursor();
    expect(db.prepare('SELECT count(*) FROM drift').pluck().get()).toBe(3);
    // A record arrives after that pass; six hours on, the records below that pass's cursor go.
    send(ids[0]!, windowSummary(baseline, 100, random));
    clock += 6 * 3600_000;
    expect(await drift.evaluate()).toEqual({ summaries: 1, evaluations: 0, raised: 0, cleared: 0 });
    // The record at the first pass's cursor stays (SQLite never hands its id to a new record: no
    // AUTOINCREMENT), and so does the one that arrived after that pass, though both are evaluated.
    expect(db.prepare('SELECT id FROM drift').pluck().all()).toEqual([cursor, drift.repo.cursor()]);
    // Below the minimum: the fleet's window carries its 100 samples over to the next pass.
    expect(drift.modelView(MODEL, VERSION, 10)?.pendingSamples).toBe(100);
    // Records not yet evaluated stay whatever bound is asked for: only ids below the cursor go.
    send(ids[0]!, windowSummary(baseline, 100, random));
    expect(drift.repo.pruneRecords(Number.MAX_SAFE_INTEGER, 1000)).toBe(1);
    expect(db.prepare('SELECT count(*) FROM drift').pluck().get()).toBe(2);
    expect(drift.repo.pruneEvaluations(MODEL, VERSION, ids[0]!, 2)).toBe(1);
    expect(drift.modelView(MODEL, VERSION, 10)?.devices).toHaveLength(1);
    expect(db.prepare('SELECT count(*) FROM drift_evaluations WHERE device_id IS NOT NULL').pluck().get()).toBe(2);
  });

  it('clears an alert as stale once its scope has had no evaluation window for the stale hours', async () => {
    const { db, ids, send } = fleet(1);
    const random = prng(808);
    let clock = Date.now();
    const { drift, events } = service(db, { now: () => clock, alertStaleHours: 24 });
    for (let i = 0; i < 2; i++) {
      send(ids[0]!, windowSummary(baseline, 500, random, { shifted: SHIFTED, shiftSd: 1 }));
      await drift.evaluate();
    }
    expect(drift.alerts('active')).toHaveLength(2);
    // The device went silent (or moved to another version): a day later its alert and the fleet's still stand.
    clock += 24 * 3600_000;
    expect((await drift.evaluate()).cleared).toBe(0);
    clock += 1;
    expect(await drift.evaluate()).toEqual({ summaries: 0, evaluations: 0, raised: 0, cleared: 2 });
    const cleared = drift.alerts('all');
    expect(cleared.map((a) => a.state)).toEqual(['cleared', 'cleared']);
    for (const a of cleared) expect(a.message).toMatch(/cleared as stale: no evaluation window for 24 h \(last at /);
    expect(events.slice(-2).map((e) => [e.deviceId, e.alert])).toEqual(expect.arrayContaining([[null, 'cleared'], [ids[0], 'cleared']]));
  });

  it('refuses a bad drift schedule or webhook URL at start, and defaults to every minute and 500 samples', () => {
    expect(() => loadConfig({ EDGEFLEET_DRIFT_EVALUATE_CRON: 'every minute' })).toThrow(/EDGEFLEET_DRIFT_EVALUATE_CRON="every minute": expected a cron schedule/);
    expect(() => loadConfig({ EDGEFLEET_DRIFT_WEBHOOK_URL: 'ftp://example.com/x' })).toThrow(/EDGEFLEET_DRIFT_WEBHOOK_URL=.*expected http/);
    expect(loadConfig({})).toMatchObject({ driftEvaluateCron: '0 * * * * *', driftMinSamples: 500, driftRecordRetentionHours: 6, driftAlertStaleHours: 24, driftWebhookUrl: undefined });
    expect(loadConfig({ EDGEFLEET_DRIFT_EVALUATE_CRON: '*/5 * * * * *', EDGEFLEET_DRIFT_MIN_SAMPLES: '200' })).toMatchObject({ driftEvaluateCron: '*/5 * * * * *', driftMinSamples: 200 });
  });

  it('skips and counts records of a version without a baseline, and joins a pass already running', async () => {
    const { db, ids, send } = fleet(1);
    send(ids[0]!, windowSummary(baseline, 500, prng(606)));
    const baselines = oneBaseline(MODEL, VERSION, baseline);
    baselines.remove();
    const { drift } = service(db, { baselines });
    const [a, b] = [drift.evaluate(), drift.evaluate()];
    expect(a).toBe(b);
    expect(await a).toEqual({ summaries: 0, evaluations: 0, raised: 0, cleared: 0 });
    expect(drift.counters.noBaseline).toBe(1);
    expect(drift.modelView(MODEL, VERSION, 10)).toBeUndefined();
  });
});
