import { EdgefleetError, type CreateRolloutRequest, type MaintenanceWindow, type WaveSpec } from '@edgefleet/shared';
import { assertWindowCron } from './maintenance-window.js';

/**
 * Rules a CreateRolloutRequest must meet beyond its schema, checked before anything is stored: each
 * refuses a setting that could never do what it says (a gate that can never judge, a window the hub
 * cannot keep), with BAD_REQUEST naming the field. Pure.
 *
 * Left alone on purpose: a wave whose cumulative size does not grow past an earlier one (it is
 * empty, which is harmless), and a count larger than the target (it is the whole target: the numbers
 * say so, and a request reused on a smaller fleet should not start failing). Whether the last wave
 * reaches the target depends on the target, so wave-plan checks that.
 */
export function assertRequestRules(req: CreateRolloutRequest, hub: { evaluatesDrift: boolean } = { evaluatesDrift: false }): void {
  if (req.maintenanceWindow) assertMinuteWindow(req.maintenanceWindow);
  (req.waves ?? []).forEach((wave, i) => assertWaveCanJudge(wave, `waves[${i}]`, req.shadow !== undefined, hub.evaluatesDrift));
}

const METRIC_GATES = ['maxErrorRateIncrease', 'maxP99Ratio', 'maxDriftScore'] as const;

/**
 * A wave's gates must be able to judge: metric gates compare telemetry of the new version after
 * the switch, which only a bake waits for (without one they are judged the moment the wave's
 * devices are done, before any telemetry of the new version arrived, and would only ever say
 * `no-data`); shadow agreement is reported only by devices told to run a shadow phase.
 */
function assertWaveCanJudge(wave: WaveSpec, field: string, hasShadow: boolean, evaluatesDrift: boolean): void {
  if (wave.gates?.maxDriftScore !== undefined && !evaluatesDrift) {
    throw new EdgefleetError(
      'BAD_REQUEST',
      `${field}.gates.maxDriftScore needs a hub that evaluates drift, and this one has no drift evaluations to judge: leave the gate out`,
    );
  }
  const metric = METRIC_GATES.filter((g) => wave.gates?.[g] !== undefined);
  if (metric.length > 0 && !(wave.bakeSec !== undefined && wave.bakeSec > 0)) {
    const names = metric.map((g) => `${field}.gates.${g}`).join(' and ');
    throw new EdgefleetError(
      'BAD_REQUEST',
      `${names} ${metric.length === 1 ? 'needs' : 'need'} ${field}.bakeSec > 0: metric gates judge the new version's telemetry after the switch, and without a bake the wave is judged before any arrives`,
    );
  }
  if (wave.gates?.minShadowAgreement !== undefined && !hasShadow) {
    throw new EdgefleetError(
      'BAD_REQUEST',
      `${field}.gates.minShadowAgreement needs "shadow" (e.g. {"sampleRate": 0.1}): without a shadow phase no device reports agreement, so the gate could never judge`,
    );
  }
}

/**
 * The window's cron must be one node-cron runs, and at minute resolution: a window opens at most once
 * a minute (its length is in minutes, and after a restart the hub finds an open window by checking
 * minute starts), so a seconds field would open it several times a minute or at a second the hub
 * never checks.
 */
function assertMinuteWindow(window: MaintenanceWindow): void {
  assertWindowCron(window);
  const fields = window.cron.trim().split(/\s+/).length;
  if (fields === 6) {
    throw new EdgefleetError(
      'BAD_REQUEST',
      `maintenanceWindow.cron "${window.cron}" has a seconds field: a window opens at most once a minute, so give 5 fields (minute hour day month weekday), e.g. "0 2 * * *"`,
    );
  }
}
