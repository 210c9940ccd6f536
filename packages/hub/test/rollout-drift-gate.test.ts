import { isEdgefleetError, type CreateRolloutRequest, type ModelVersion } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { beforeAll, describe, expect, it } from 'vitest';
import { driftGate } from '../src/rollouts/gates.js';
import { assertRequestRules } from '../src/rollouts/request-rules.js';
import { useTestHub } from './hub-harness.js';
import { rolloutTestApi } from './rollout-devices.js';

const AT = '2026-12-01T00:00:00.000Z';

describe('drift gate (pure)', () => {
  const gates = { maxDriftScore: 1 };

  it('is not evaluated unless asked for', () => {
    expect(driftGate(undefined, ['a'], new Map([['a', 9]]), AT)).toBeUndefined();
    expect(driftGate({ maxP99Ratio: 2 }, ['a'], new Map([['a', 9]]), AT)).toBeUndefined();
  });

  it('says no-data while no device of the wave has an evaluation; devices without one do not block', () => {
    expect(driftGate(gates, ['a', 'b'], new Map(), AT)).toMatchObject({ gate: 'drift', status: 'no-data', observed: null, threshold: 1 });
    expect(driftGate(gates, ['a', 'b'], new Map([['other', 5]]), AT)?.status).toBe('no-data');
    expect(driftGate(gates, ['a', 'b'], new Map([['a', 0.4]]), AT)).toMatchObject({ status: 'passed', observed: 0.4, message: expect.stringContaining('1 of 2 devices evaluated') });
  });

  it('fails on the highest score above the allowed one and names its device; exactly at it passes', () => {
    const r = driftGate(gates, ['a', 'b', 'c'], new Map([['a', 0.5], ['b', 2.25], ['c', 1.1]]), AT)!;
    expect(r).toMatchObject({ status: 'failed', observed: 2.25, baseline: null, threshold: 1, at: AT });
    expect(r.message).toBe('highest drift score 2.25 on b (> 1.00 allowed); 3 of 3 devices evaluated');
    expect(driftGate(gates, ['a'], new Map([['a', 1]]), AT)?.status).toBe('passed');
  });
});

describe('drift gate request rules', () => {
  const base: CreateRolloutRequest = { model: 'clf', version: '2', target: { all: true } };
  const refusal = (req: Partial<CreateRolloutRequest>, evaluatesDrift: boolean) => {
    try {
      assertRequestRules({ ...base, ...req }, { evaluatesDrift });
      return null;
    } catch (err) {
      if (isEdgefleetError(err) && err.code === 'BAD_REQUEST') return err.message;
      throw err;
    }
  };

  it('needs a bake and a hub that evaluates drift', () => {
    const waves = [{ size: '100%' as const, bakeSec: 60, gates: { maxDriftScore: 1 } }];
    expect(refusal({ waves }, true)).toBeNull();
    expect(refusal({ waves }, false)).toMatch(/waves\[0\]\.gates\.maxDriftScore needs a hub that evaluates drift/);
    expect(refusal({ waves: [{ size: '100%', gates: { maxDriftScore: 1 } }] }, true)).toMatch(/waves\[0\]\.gates\.maxDriftScore needs waves\[0\]\.bakeSec > 0/);
  });
});

describe('a rollout stopped by the drift gate', () => {
  /** Latest drift scores per device of clf@2, as the drift evaluations would give them. */
  const scores = new Map<string, number>();
  const asked: Array<{ model: string; version: string; devices: ReadonlyArray<{ deviceId: string; since: number }> }> = [];
  const t = useTestHub({
    hub: {
      driftScores: (model, version, devices) => {
        asked.push({ model, version, devices });
        return new Map(devices.flatMap(({ deviceId: id }) => (scores.has(id) ? [[id, scores.get(id)!] as const] : [])));
      },
    },
  });
  const { devices, created, until, onV1 } = rolloutTestApi(t);

  beforeAll(async () => {
    for (const [version, hidden] of [['1', [4]], ['2', [3]]] as const) {
      const res = await t.api<ModelVersion>('POST', `/api/v1/models/clf/versions?version=${version}`, buildMlp({ inputSize: 4, hidden: [...hidden], outputSize: 2 }));
      expect(res.status).toBe(201);
    }
  });

  it('halts the first wave when a switched device drifts, before the second wave starts', async () => {
    const sims = await devices(3);
    const old = await onV1(sims);
    scores.set(sims[0]!.id, 3.5);
    const r = await created({ model: 'clf', version: '2', target: { deviceIds: sims.map((s) => s.id) }, waves: [{ size: 1, bakeSec: 1, gates: { maxDriftScore: 1.5 } }, { size: '100%' }] });
    const a = await sims[0]!.assigned('clf', r.id);
    await sims[0]!.switchTo(a, old[0]);
    const halted = await until(r.id, (x) => x.state !== 'running', 'the first wave judged after its bake');
    expect(halted.state).toBe('halted');
    expect(halted.reason).toMatchObject({ wave: 0, gate: 'drift', message: `highest drift score 3.50 on ${sims[0]!.id} (> 1.50 allowed); 1 of 1 device evaluated` });
    expect(halted.waves[0]!.gates.find((g) => g.gate === 'drift')).toMatchObject({ status: 'failed', observed: 3.5, threshold: 1.5 });
    expect(halted.waves[1]!.state).toBe('pending');
    // Each switched device with when it switched: the drift service counts only windows that ended after it.
    expect(asked.at(-1)).toEqual({ model: 'clf', version: '2', devices: [{ deviceId: sims[0]!.id, since: expect.any(Number) }] });
    expect(asked.at(-1)!.devices[0]!.since).toBeGreaterThan(Date.now() - 60_000);
    await Promise.all(sims.map((s) => s.close()));
  }, 20_000);
});
