import { isEdgefleetError, type CreateRolloutRequest } from '@edgefleet/shared';
import { describe, expect, it } from 'vitest';
import { assertRequestRules } from '../src/rollouts/request-rules.js';

const base: CreateRolloutRequest = { model: 'clf', version: '2', target: { all: true } };

/** The BAD_REQUEST message the rules give, or null when they accept the request. */
function refusal(req: Partial<CreateRolloutRequest>): string | null {
  try {
    assertRequestRules({ ...base, ...req });
    return null;
  } catch (err) {
    if (isEdgefleetError(err) && err.code === 'BAD_REQUEST') return err.message;
    throw err;
  }
}

describe('rollout request rules (pure)', () => {
  it('accepts a plain request and the README example', () => {
    expect(refusal({})).toBeNull();
    expect(
      refusal({
        waves: [
          { size: 1, bakeSec: 600 },
          { size: '10%', bakeSec: 600, gates: { maxFailureShare: 0, maxErrorRateIncrease: 0.01, maxP99Ratio: 1.3, minRequests: 200 } },
          { size: '100%' },
        ],
        maintenanceWindow: { cron: '0 2 * * *', durationMinutes: 120 },
        shadow: { sampleRate: 0.1, minSamples: 50, minAgreement: 0.99 },
      }),
    ).toBeNull();
  });

  it('refuses metric gates on a wave without a bake, naming the wave and the gates', () => {
    expect(refusal({ waves: [{ size: 1, bakeSec: 60 }, { size: '100%', gates: { maxErrorRateIncrease: 0.01 } }] })).toBe(
      "waves[1].gates.maxErrorRateIncrease needs waves[1].bakeSec > 0: metric gates judge the new version's telemetry after the switch, and without a bake the wave is judged before any arrives",
    );
    expect(refusal({ waves: [{ size: '100%', bakeSec: 0, gates: { maxErrorRateIncrease: 0.01, maxP99Ratio: 1.5 } }] })).toMatch(
      /^waves\[0\]\.gates\.maxErrorRateIncrease and waves\[0\]\.gates\.maxP99Ratio need waves\[0\]\.bakeSec > 0/,
    );
    expect(refusal({ waves: [{ size: '100%', bakeSec: 1, gates: { maxP99Ratio: 1.5 } }] })).toBeNull();
    // Share gates are judged from device states: they need no bake.
    expect(refusal({ waves: [{ size: '100%', gates: { maxFailureShare: 0.1, minSuccessShare: 0.9, minRequests: 5 } }] })).toBeNull();
  });

  it('refuses a shadow-agreement gate without a shadow phase', () => {
    expect(refusal({ waves: [{ size: '100%', gates: { minShadowAgreement: 0.95 } }] })).toBe(
      'waves[0].gates.minShadowAgreement needs "shadow" (e.g. {"sampleRate": 0.1}): without a shadow phase no device reports agreement, so the gate could never judge',
    );
    expect(refusal({ waves: [{ size: '100%', gates: { minShadowAgreement: 0.95 } }], shadow: { sampleRate: 0.5 } })).toBeNull();
  });

  it('refuses a maintenance window with a seconds field or one node-cron cannot run', () => {
    expect(refusal({ maintenanceWindow: { cron: '*/10 * * * * *', durationMinutes: 5 } })).toBe(
      'maintenanceWindow.cron "*/10 * * * * *" has a seconds field: a window opens at most once a minute, so give 5 fields (minute hour day month weekday), e.g. "0 2 * * *"',
    );
    // Even the seconds-zero spelling of a 5-field expression: one way to say it.
    expect(refusal({ maintenanceWindow: { cron: ' 0 0 2 * * * ', durationMinutes: 5 } })).toMatch(/has a seconds field/);
    expect(refusal({ maintenanceWindow: { cron: 'every night', durationMinutes: 5 } })).toMatch(/maintenanceWindow\.cron "every night" is not a valid cron expression/);
    for (const cron of ['0 2 * * *', '30 1 * * MON-FRI', '@daily']) expect(refusal({ maintenanceWindow: { cron, durationMinutes: 60 } }), cron).toBeNull();
  });

  it('leaves empty and oversized waves alone (an empty wave is harmless; a count past the target is the target)', () => {
    expect(refusal({ waves: [{ size: 3 }, { size: 1 }, { size: 50 }, { size: '100%' }] })).toBeNull();
  });
});
