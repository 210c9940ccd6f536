import type { DeploymentEvent, InstalledModel, ModelAssignment, RolloutDeviceState, VersionRef } from '@edgefleet/shared';
import { describe, expect, it } from 'vitest';
import { nextDesired, withoutModel } from '../src/rollouts/desired-doc.js';
import { onDeadline, onDeploymentEvent, onReported, onWindowClose, switchesOnWindowOpen, type DeviceSnapshot } from '../src/rollouts/device-transitions.js';
import { cumulativeSizes, planWaves } from '../src/rollouts/wave-plan.js';

const v1: VersionRef = { model: 'clf', version: '1', profile: 'fp32', sha256: 'aaa' };
const v2: VersionRef = { model: 'clf', version: '2', profile: 'fp32', sha256: 'bbb' };
const row = (state: RolloutDeviceState, extra: Partial<DeviceSnapshot> = {}): DeviceSnapshot => ({ state, from: v1, to: v2, deadline: 10_000, ...extra });
const ev = (phase: DeploymentEvent['phase'], extra: Partial<DeploymentEvent> = {}): DeploymentEvent =>
  ({ v: 1, seq: 1, ts: 0, type: 'deployment', model: 'clf', version: '2', sha256: 'bbb', phase, ...extra }) as DeploymentEvent;
const installed = (ref: VersionRef, active: boolean): InstalledModel => ({ name: ref.model, version: ref.version, sha256: ref.sha256, profile: ref.profile, active });

describe('wave plan (pure)', () => {
  it('cuts cumulative sizes from counts and percentages, rounding up', () => {
    expect(cumulativeSizes([{ size: 1 }, { size: '10%' }, { size: '50%' }, { size: '100%' }], 30)).toEqual([1, 3, 15, 30]);
    expect(cumulativeSizes([{ size: '10%' }, { size: '100%' }], 5)).toEqual([1, 5]);
    // A size below an earlier one leaves its wave empty; a count past the target is the target.
    expect(cumulativeSizes([{ size: 3 }, { size: 1 }, { size: 50 }], 4)).toEqual([3, 3, 4]);
  });

  it('refuses waves that never reach the whole target', () => {
    expect(() => cumulativeSizes([{ size: 1 }, { size: '50%' }], 10)).toThrow(/reaches 5 of the 10 target devices/);
  });

  it('puts online devices first, then orders by id', () => {
    const plan = planWaves(
      [
        { id: 'd', online: false },
        { id: 'c', online: true },
        { id: 'a', online: false },
        { id: 'b', online: true },
      ],
      [{ size: 1 }, { size: '50%' }, { size: '100%' }],
    );
    expect(plan).toEqual([
      { deviceId: 'b', wave: 0, position: 0 },
      { deviceId: 'c', wave: 1, position: 1 },
      { deviceId: 'a', wave: 2, position: 2 },
      { deviceId: 'd', wave: 2, position: 3 },
    ]);
  });
});

describe('device transitions (pure)', () => {
  it('moves progress forward only; replayed or reordered events do not move it back', () => {
    expect(onDeploymentEvent(row('assigned'), ev('downloading', { progress: 0.5 }), 1)).toMatchObject({ state: 'downloading', progress: 0.5 });
    expect(onDeploymentEvent(row('loading'), ev('downloading'), 1)).toBeNull();
    expect(onDeploymentEvent(row('loading'), ev('health-check'), 1)).toMatchObject({ state: 'health-check' });
    expect(onDeploymentEvent(row('shadow'), ev('ready'), 1)).toMatchObject({ state: 'ready' });
    expect(onDeploymentEvent(row('active'), ev('downloading'), 1)).toBeNull();
  });

  it('ignores events about another file', () => {
    expect(onDeploymentEvent(row('assigned'), ev('active', { sha256: 'other' }), 1)).toBeNull();
  });

  it('treats a retryable failure as retrying, and a retry starts progress over', () => {
    const retry = onDeploymentEvent(row('downloading'), ev('failed', { retryable: true, code: 'UNAVAILABLE', message: 'hub unreachable after 6 attempts' }), 1);
    expect(retry).toMatchObject({ state: 'retrying', error: 'UNAVAILABLE: hub unreachable after 6 attempts' });
    expect(onDeploymentEvent(row('retrying'), ev('downloading', { progress: 0.1 }), 1)).toMatchObject({ state: 'downloading', error: null });
  });

  it('keeps a shadow report, even one that arrives after the row moved on', () => {
    const shadow = { samples: 50, agreement: 0.98, maxAbsDiff: 0.01, activeP50Ms: 1, candidateP50Ms: 1.2 };
    expect(onDeploymentEvent(row('loading'), ev('shadow', { shadow, progress: 1 }), 1)).toMatchObject({ state: 'shadow', shadow });
    expect(onDeploymentEvent(row('deferred'), ev('shadow', { shadow }), 1)).toEqual({ state: 'deferred', shadow });
    expect(onDeploymentEvent(row('deferred'), ev('shadow'), 1)).toBeNull();
  });

  it('fails on a final failure, keeping the shadow report that caused it', () => {
    const shadow = { samples: 50, agreement: 0.4, maxAbsDiff: 2, activeP50Ms: 1, candidateP50Ms: 1 };
    expect(onDeploymentEvent(row('shadow'), ev('failed', { code: 'SHADOW_DISAGREEMENT', message: 'agreement 0.4', shadow }), 1)).toMatchObject({
      state: 'failed',
      error: 'SHADOW_DISAGREEMENT: agreement 0.4',
      shadow,
    });
  });

  it('lets active win over an earlier failure or time-out, not over a row that left the rollout', () => {
    for (const s of ['failed', 'retrying', 'timed-out', 'assigned'] as const) {
      expect(onDeploymentEvent(row(s), ev('active'), 7)).toEqual({ state: 'active', progress: 1, error: null, switchedAt: 7 });
      expect(onReported(row(s), [installed(v1, false), installed(v2, true)], 7)).toMatchObject({ state: 'active', switchedAt: 7 });
    }
    for (const s of ['superseded', 'cancelled', 'pending', 'waiting', 'rolled-back'] as const) {
      expect(onDeploymentEvent(row(s), ev('active'), 7)).toBeNull();
      expect(onReported(row(s), [installed(v2, true)], 7)).toBeNull();
    }
    expect(onDeploymentEvent(row('active'), ev('failed', { retryable: true }), 1)).toBeNull();
  });

  it('counts the agent switching back on its own (health window) as rolled back with its reason', () => {
    expect(onDeploymentEvent(row('active'), ev('rolled-back', { code: 'UNHEALTHY', message: 'error rate 0.6' }), 1)).toMatchObject({
      state: 'rolled-back',
      error: 'UNHEALTHY: error rate 0.6',
    });
  });

  it('finishes a hub rollback when the previous version is active again, or the model is gone', () => {
    expect(onReported(row('rolling-back'), [installed(v2, true)], 1)).toBeNull();
    expect(onReported(row('rolling-back'), [installed(v1, true), installed(v2, false)], 1)).toMatchObject({ state: 'rolled-back' });
    expect(onDeploymentEvent(row('rolling-back'), ev('active', { sha256: 'aaa', version: '1' }), 1)).toMatchObject({ state: 'rolled-back' });
    expect(onDeploymentEvent(row('rolling-back'), ev('active'), 1)).toBeNull();
    expect(onReported(row('rolling-back', { from: null }), [], 1)).toMatchObject({ state: 'rolled-back' });
    expect(onDeploymentEvent(row('rolling-back', { from: null }), ev('removed'), 1)).toMatchObject({ state: 'rolled-back' });
  });

  it('times out an unfinished device at its deadline, not a device waiting for its window', () => {
    expect(onDeadline({ ...row('downloading'), activate: true }, 9_999, 10)).toBeNull();
    expect(onDeadline({ ...row('downloading'), activate: true }, 10_000, 10)).toMatchObject({ state: 'timed-out', error: expect.stringMatching(/not done 10 s after its assignment \(last state: downloading\)/) });
    expect(onDeadline({ ...row('ready'), activate: false }, 20_000, 10)).toBeNull();
    expect(onDeadline({ ...row('active'), activate: true }, 20_000, 10)).toBeNull();
  });

  it('times out a ready device that was told to switch (the window is open) and did not: offline, it must not hold its wave', () => {
    expect(onDeadline({ ...row('ready'), activate: true }, 9_999, 10)).toBeNull();
    expect(onDeadline({ ...row('ready'), activate: true }, 10_000, 10)).toMatchObject({ state: 'timed-out', error: expect.stringMatching(/last state: ready/) });
  });

  it('keeps a timed-out device timed out on a retryable failure (no flapping back into a download slot), not on a final one', () => {
    // Past its deadline: back in `retrying` the next tick would time it out again, and meanwhile it holds a slot and its wave open.
    expect(onDeploymentEvent(row('timed-out'), ev('failed', { retryable: true, code: 'UNAVAILABLE' }), 20_000)).toBeNull();
    expect(onDeploymentEvent(row('timed-out'), ev('failed', { code: 'INTEGRITY' }), 20_000)).toMatchObject({ state: 'failed' });
  });
});

describe('maintenance window (pure)', () => {
  const told = (state: RolloutDeviceState, activate: boolean) => ({ state, activate });

  it('holds every device that was told to switch and has not, when the window closes', () => {
    for (const state of ['assigned', 'downloading', 'verifying', 'loading', 'health-check', 'shadow', 'ready', 'retrying', 'timed-out'] as const) {
      expect(onWindowClose(told(state, true))).toEqual({ state });
    }
    // A device deferred by a local lock has the version prepared: it now waits for the next window, untimed.
    expect(onWindowClose(told('deferred', true))).toEqual({ state: 'ready' });
  });

  it('leaves switched, finished and already held devices alone', () => {
    for (const state of ['active', 'failed', 'rolling-back', 'rolled-back', 'cancelled', 'superseded', 'pending', 'waiting'] as const) {
      expect(onWindowClose(told(state, true))).toBeNull();
    }
    expect(onWindowClose(told('downloading', false))).toBeNull();
  });

  it('lets held devices switch when the window opens again, timed-out ones included', () => {
    expect(switchesOnWindowOpen(told('ready', false))).toBe(true);
    expect(switchesOnWindowOpen(told('timed-out', false))).toBe(true);
    expect(switchesOnWindowOpen(told('ready', true))).toBe(false);
    expect(switchesOnWindowOpen(told('active', false))).toBe(false);
    expect(switchesOnWindowOpen(told('waiting', false))).toBe(false);
  });
});

describe('desired documents (pure)', () => {
  const assignment = (model: string, version: string): ModelAssignment => ({ manifest: { manifest: { model, version }, signature: 'x' } }) as unknown as ModelAssignment;

  it('bumps the version, replaces the same model and keeps the others', () => {
    const first = nextDesired(undefined, assignment('a', '1'));
    expect(first.version).toBe(1);
    const second = nextDesired(nextDesired(first, assignment('b', '1')), assignment('a', '2'));
    expect(second.version).toBe(3);
    expect(second.models.map((m) => `${m.manifest.manifest.model}@${m.manifest.manifest.version}`)).toEqual(['b@1', 'a@2']);
    expect(withoutModel(second, 'a')).toMatchObject({ version: 4, models: [{ manifest: { manifest: { model: 'b' } } }] });
  });
});
