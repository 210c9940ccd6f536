import { isEdgefleetError, type GateResult, type RolloutSettings, type WaveSpec } from '@edgefleet/shared';
import { describe, expect, it } from 'vitest';
import { advanceRollout, applyAction, windowOpen, type MetricJudge, type RolloutCore, type WaveCore } from '../src/rollouts/rollout-machine.js';

const settings: RolloutSettings = {
  maxConcurrentDownloads: 10,
  deviceTimeoutSec: 900,
  autoRollback: false,
  maxDeferSec: 600,
  maintenanceWindow: null,
  shadow: null,
  healthWindow: null,
};
const rollout = (extra: Partial<RolloutCore> = {}): RolloutCore => ({ id: 'ro-1', state: 'running', settings, reason: null, windowOpenUntil: null, ...extra });
const wave = (index: number, spec: WaveSpec, extra: Partial<WaveCore> = {}): WaveCore => ({
  index,
  state: 'pending',
  spec,
  startedAt: null,
  bakeUntil: null,
  endedAt: null,
  gates: [],
  override: false,
  ...extra,
});
const noMetrics: MetricJudge = () => [];
const gate = (g: GateResult['gate'], status: GateResult['status']): GateResult => ({ gate: g, status, observed: 0.3, baseline: 0.01, threshold: 0.05, message: `${g} ${status} 0.30 vs 0.01`, at: 'x' });

function conflict(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isEdgefleetError(err) && err.code === 'CONFLICT') return err.message;
    throw err;
  }
  throw new Error('expected CONFLICT');
}

describe('rollout machine (pure)', () => {
  const three = [wave(0, { size: 1 }), wave(1, { size: '50%' }), wave(2, { size: '100%' })];

  it('starts the first wave and opens it for assignment', () => {
    const step = advanceRollout(rollout(), three, [{ pending: 1 }, { pending: 4 }, { pending: 5 }], 1000, noMetrics);
    expect(step).toMatchObject({ changed: true, openThrough: 0, rollback: false });
    expect(step.waves[0]).toMatchObject({ state: 'running', startedAt: 1000 });
    expect(step.waves[1]!.state).toBe('pending');
  });

  it('keeps a wave running while a device is in flight, retrying or waiting for its window', () => {
    const running = [wave(0, { size: 2 }, { state: 'running', startedAt: 1 })];
    for (const busy of ['assigned', 'retrying', 'ready', 'deferred', 'waiting'] as const) {
      const step = advanceRollout(rollout(), running, [{ active: 1, [busy]: 1 }], 2, noMetrics);
      expect(step).toMatchObject({ changed: false, openThrough: 0 });
    }
  });

  it('passes a done wave through its share gates and starts the next in the same step', () => {
    const waves = [wave(0, { size: 1 }, { state: 'running', startedAt: 1 }), wave(1, { size: '100%' })];
    const step = advanceRollout(rollout(), waves, [{ active: 1 }, { pending: 3 }], 5000, noMetrics);
    expect(step.waves[0]).toMatchObject({ state: 'passed', endedAt: 5000 });
    expect(step.waves[0]!.gates.map((g) => [g.gate, g.status])).toEqual([
      ['failure-share', 'passed'],
      ['success-share', 'passed'],
    ]);
    expect(step.waves[1]!.state).toBe('running');
    expect(step.openThrough).toBe(1);
  });

  it('does not let timed-out devices block a wave', () => {
    const waves = [wave(0, { size: 3 }, { state: 'running' })];
    const step = advanceRollout(rollout(), waves, [{ active: 2, 'timed-out': 1 }], 1, noMetrics);
    expect(step.rollout.state).toBe('succeeded');
    expect(step.waves[0]!.gates.find((g) => g.gate === 'success-share')!.message).toMatch(/2 of 2 reachable devices active.*1 timed out/);
  });

  it('halts instead of starting the next, bigger wave when the canary wave reached no device; resume goes past it', () => {
    const waves = [wave(0, { size: 1 }, { state: 'running' }), wave(1, { size: '100%' })];
    const counts = [{ 'timed-out': 1 }, { pending: 9 }];
    const halted = advanceRollout(rollout(), waves, counts, 1, noMetrics);
    expect(halted.rollout).toMatchObject({ state: 'halted', reason: { wave: 0, gate: 'success-share', message: expect.stringMatching(/^no device reached: 1 of 1 device timed out, none active/) } });
    expect(halted).toMatchObject({ openThrough: null, rollback: false });
    expect(halted.waves.map((w) => w.state)).toEqual(['halted', 'pending']);
    const resumed = applyAction(halted.rollout, halted.waves, 'resume', 2);
    const next = advanceRollout(resumed.rollout, resumed.waves, counts, 3, noMetrics);
    expect(next.waves.map((w) => w.state)).toEqual(['passed', 'running']);
    expect(next.openThrough).toBe(1);
    // With autoRollback the timed-out canary is rolled back (desired = its previous version) like any halted wave.
    const auto = advanceRollout(rollout({ settings: { ...settings, autoRollback: true } }), waves, counts, 1, noMetrics);
    expect(auto).toMatchObject({ rollout: { state: 'rolling-back' }, rollback: true });
  });

  it('bakes before judging the metric gates, then judges them', () => {
    const waves = [wave(0, { size: 1, bakeSec: 60 }, { state: 'running' }), wave(1, { size: '100%' })];
    let judged = 0;
    const judge: MetricJudge = () => {
      judged++;
      return [gate('error-rate', 'passed')];
    };
    const baking = advanceRollout(rollout(), waves, [{ active: 1 }, { pending: 2 }], 1000, judge);
    expect(baking.waves[0]).toMatchObject({ state: 'baking', bakeUntil: 61_000 });
    expect(judged).toBe(0);
    const still = advanceRollout(rollout(), baking.waves, [{ active: 1 }, { pending: 2 }], 60_999, judge);
    expect(still.changed).toBe(false);
    const done = advanceRollout(rollout(), baking.waves, [{ active: 1 }, { pending: 2 }], 61_000, judge);
    expect(judged).toBe(1);
    expect(done.waves[0]!.state).toBe('passed');
    expect(done.waves[0]!.gates.map((g) => g.gate)).toContain('error-rate');
  });

  it('halts as soon as the failure share is exceeded, naming the gate and the numbers', () => {
    const waves = [wave(0, { size: 4, gates: { maxFailureShare: 0.25 } }, { state: 'running' })];
    expect(advanceRollout(rollout(), waves, [{ failed: 1, downloading: 3 }], 1, noMetrics).rollout.state).toBe('running');
    const step = advanceRollout(rollout(), waves, [{ failed: 1, 'rolled-back': 1, downloading: 2 }], 1, noMetrics);
    expect(step.rollout).toMatchObject({ state: 'halted', reason: { wave: 0, gate: 'failure-share', message: '2 of 4 devices failed (0.50 > 0.25 allowed)' } });
    expect(step).toMatchObject({ openThrough: null, rollback: false });
    expect(step.waves[0]!.state).toBe('halted');
  });

  it('does not count a retrying device as failed (the false-"failed" case)', () => {
    const waves = [wave(0, { size: 3 }, { state: 'running' })];
    const step = advanceRollout(rollout(), waves, [{ retrying: 3 }], 1, noMetrics);
    expect(step.rollout.state).toBe('running');
  });

  it('halts on a failed metric gate and, with autoRollback, rolls back and cancels later waves', () => {
    const waves = [wave(0, { size: 1 }, { state: 'running' }), wave(1, { size: '100%' })];
    const judge: MetricJudge = () => [gate('error-rate', 'failed'), gate('p99-latency', 'no-data')];
    const step = advanceRollout(rollout({ settings: { ...settings, autoRollback: true } }), waves, [{ active: 1 }, { pending: 3 }], 1, judge);
    expect(step.rollout).toMatchObject({ state: 'rolling-back', reason: { wave: 0, gate: 'error-rate', message: 'error-rate failed 0.30 vs 0.01' } });
    expect(step.rollback).toBe(true);
    expect(step.waves.map((w) => w.state)).toEqual(['halted', 'cancelled']);
  });

  it('does not halt on a metric gate without data', () => {
    const step = advanceRollout(rollout(), [wave(0, { size: 1 }, { state: 'running' })], [{ active: 1 }], 1, () => [gate('p99-latency', 'no-data')]);
    expect(step.rollout.state).toBe('succeeded');
  });

  it('halts on the success share when too few devices became active', () => {
    const waves = [wave(0, { size: 4, gates: { maxFailureShare: 1, minSuccessShare: 0.9 } }, { state: 'running' })];
    const step = advanceRollout(rollout(), waves, [{ active: 3, failed: 1 }], 1, noMetrics);
    expect(step.rollout.reason).toMatchObject({ gate: 'success-share', message: '3 of 4 reachable devices active (0.75 < 0.90 required)' });
  });

  it('assigns nothing while paused, halted or rolling back', () => {
    const waves = [wave(0, { size: 2 }, { state: 'running' })];
    for (const state of ['paused', 'halted', 'aborted'] as const) {
      expect(advanceRollout(rollout({ state }), waves, [{ waiting: 2 }], 1, noMetrics)).toMatchObject({ changed: false, openThrough: null });
    }
  });

  it('ends a rollback when no device is still rolling back', () => {
    const waves = [wave(0, { size: 2 }, { state: 'halted' })];
    expect(advanceRollout(rollout({ state: 'rolling-back' }), waves, [{ 'rolling-back': 1, 'rolled-back': 1 }], 1, noMetrics).changed).toBe(false);
    expect(advanceRollout(rollout({ state: 'rolling-back' }), waves, [{ 'rolled-back': 2 }], 1, noMetrics).rollout.state).toBe('rolled-back');
  });

  it('ends a rollback when the devices still rolling back are past their deadline, saying how many did not confirm', () => {
    const waves = [wave(0, { size: 3 }, { state: 'halted' })];
    const reason = { wave: 0, gate: 'failure-share' as const, message: '1 of 3 devices failed (0.33 > 0.00 allowed)', at: 'then' };
    const rollingBack = rollout({ state: 'rolling-back', reason });
    const counts = [{ 'rolling-back': 2, 'rolled-back': 1 }];
    // One of the two is still within its deadline: the rollback goes on.
    expect(advanceRollout(rollingBack, waves, counts, 1, noMetrics, 1).changed).toBe(false);
    const ended = advanceRollout(rollingBack, waves, counts, 2, noMetrics, 2);
    expect(ended.rollout.state).toBe('rolled-back');
    expect(ended.rollout.reason).toEqual({
      ...reason,
      message: '1 of 3 devices failed (0.33 > 0.00 allowed); rollback ended with 2 of 3 devices not confirmed back on the previous version within 900 s (they return to it when they reconnect)',
    });
    // Every device confirmed: the reason stays as it was.
    expect(advanceRollout(rollingBack, waves, [{ 'rolled-back': 3 }], 2, noMetrics, 0).rollout.reason).toEqual(reason);
    // A rolled-back rollout does not move again when a late device converges.
    expect(advanceRollout(ended.rollout, waves, [{ 'rolled-back': 3 }], 3, noMetrics).changed).toBe(false);
  });

  it('ends a rollback saying how many devices it could not return (no manifest of their previous version)', () => {
    const waves = [wave(0, { size: 4 }, { state: 'halted' })];
    const reason = { wave: 0, gate: 'error-rate' as const, message: 'error rate 0.30 on 4 devices', at: 'then' };
    const rollingBack = rollout({ state: 'rolling-back', reason });
    const ended = advanceRollout(rollingBack, waves, [{ 'rolled-back': 3, failed: 1 }], 1, noMetrics);
    expect(ended.rollout).toMatchObject({ state: 'rolled-back' });
    expect(ended.rollout.reason).toEqual({
      ...reason,
      message: 'error rate 0.30 on 4 devices; 1 of 4 devices could not be rolled back: no manifest of its previous version is known, so it keeps the new version (see the device errors)',
    });
    // Both kinds at once, after an operator's rollback (no gate): one note each.
    const byOperator = rollout({ state: 'rolling-back', reason: { wave: 0, gate: null, message: 'rolled back by an operator', at: 'then' } });
    const both = advanceRollout(byOperator, waves, [{ 'rolling-back': 1, 'rolled-back': 1, failed: 2 }], 1, noMetrics, 1);
    expect(both.rollout.reason!.message).toBe(
      'rolled back by an operator; rollback ended with 1 of 4 devices not confirmed back on the previous version within 900 s (it returns to it when it reconnects); ' +
        '2 of 4 devices could not be rolled back: no manifest of their previous version is known, so they keep the new version (see the device errors)',
    );
    // A rollout that was never given a reason still gets one.
    const bare = advanceRollout(rollout({ state: 'rolling-back' }), waves, [{ failed: 1 }], 5, noMetrics);
    expect(bare.rollout.reason).toMatchObject({ wave: 0, gate: null, message: expect.stringMatching(/^1 of 1 device could not be rolled back/) });
  });

  it('rebuilds the same decisions from stored state (a restart changes nothing by itself)', () => {
    const first = advanceRollout(rollout(), three, [{ active: 1 }, { pending: 4 }, { pending: 5 }], 1000, noMetrics);
    const again = advanceRollout(first.rollout, first.waves, [{ active: 1 }, { pending: 4 }, { pending: 5 }], 1000, noMetrics);
    expect(again).toMatchObject({ changed: false, openThrough: first.openThrough });
    expect(again.waves).toEqual(first.waves);
  });

  it('applies operator actions only where they make sense, with a 409 naming the state', () => {
    const waves = [wave(0, { size: 2 }, { state: 'running' }), wave(1, { size: '100%' })];
    const paused = applyAction(rollout(), waves, 'pause', 1);
    expect(paused).toMatchObject({ rollout: { state: 'paused', reason: { gate: null, message: 'paused by an operator' } }, devices: 'none' });
    expect(conflict(() => applyAction(paused.rollout, waves, 'pause', 2))).toMatch(/rollout ro-1 is paused: pause applies only to a running rollout/);
    expect(applyAction(paused.rollout, waves, 'resume', 2).rollout).toMatchObject({ state: 'running', reason: null });
    expect(conflict(() => applyAction(rollout(), waves, 'resume', 2))).toMatch(/is running: resume/);
    const aborted = applyAction(rollout(), waves, 'abort', 3);
    expect(aborted).toMatchObject({ rollout: { state: 'aborted' }, devices: 'abort' });
    expect(aborted.waves.map((w) => w.state)).toEqual(['cancelled', 'cancelled']);
    expect(conflict(() => applyAction(aborted.rollout, aborted.waves, 'abort', 4))).toMatch(/is aborted/);
    expect(applyAction(aborted.rollout, aborted.waves, 'rollback', 4)).toMatchObject({ rollout: { state: 'rolling-back' }, devices: 'rollback' });
    for (const state of ['rolling-back', 'rolled-back'] as const) expect(conflict(() => applyAction(rollout({ state }), waves, 'rollback', 5))).toMatch(new RegExp(`is ${state}`));
    expect(conflict(() => applyAction(rollout({ state: 'succeeded' }), waves, 'abort', 5))).toMatch(/is succeeded/);
  });

  it('resumes a halted rollout past the gate that stopped it', () => {
    const waves = [wave(0, { size: 4 }, { state: 'running' }), wave(1, { size: '100%' })];
    const halted = advanceRollout(rollout(), waves, [{ failed: 1, active: 3 }, { pending: 2 }], 1, noMetrics);
    expect(halted.rollout.state).toBe('halted');
    const resumed = applyAction(halted.rollout, halted.waves, 'resume', 2);
    expect(resumed.waves[0]).toMatchObject({ state: 'running', override: true });
    const next = advanceRollout(resumed.rollout, resumed.waves, [{ failed: 1, active: 3 }, { pending: 2 }], 3, noMetrics);
    expect(next.waves.map((w) => w.state)).toEqual(['passed', 'running']);
    expect(next.openThrough).toBe(1);
  });

  it('knows when a maintenance window lets devices switch', () => {
    const windowed = { ...settings, maintenanceWindow: { cron: '0 2 * * *', durationMinutes: 60 } };
    expect(windowOpen(rollout(), 5)).toBe(true);
    expect(windowOpen(rollout({ settings: windowed }), 5)).toBe(false);
    expect(windowOpen(rollout({ settings: windowed, windowOpenUntil: 10 }), 5)).toBe(true);
    expect(windowOpen(rollout({ settings: windowed, windowOpenUntil: 10 }), 10)).toBe(false);
  });
});

