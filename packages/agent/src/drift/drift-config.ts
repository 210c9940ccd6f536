import { EdgefleetError } from '@edgefleet/shared';

/**
 * The drift options of `edgefleet-agent run` (flags over environment over defaults), parsed and
 * checked here so config.ts stays the one place that reads the environment without holding them all.
 */
export interface DriftConfig {
  /** False (EDGEFLEET_DRIFT=off): no summaries in the workers, no windows, no field samples. */
  enabled: boolean;
  /** A window closes after this many seconds or this many served requests, whichever first. */
  windowSec?: number;
  windowRequests?: number;
  /** Field samples uploaded per window and model (opt-in: 0 by default), and the top-2 margin under which an output is a hard example. */
  fieldSamples?: { random: number; hard: number; hardMargin: number };
}

export type DriftFlag = 'drift' | 'drift-window-sec' | 'drift-window-requests' | 'field-samples-random' | 'field-samples-hard' | 'hard-example-margin';

/** The flags for parseArgs. */
export const DRIFT_OPTIONS: Record<DriftFlag, { type: 'string' }> = {
  drift: { type: 'string' },
  'drift-window-sec': { type: 'string' },
  'drift-window-requests': { type: 'string' },
  'field-samples-random': { type: 'string' },
  'field-samples-hard': { type: 'string' },
  'hard-example-margin': { type: 'string' },
};

/** Each window is one outbox record per model: shorter windows would flood the outbox and the hub. */
export const MIN_WINDOW_SEC = 10;
/** Field samples kept per window and model at most, each kind: they are held in memory until uploaded. */
export const MAX_FIELD_SAMPLES_PER_WINDOW = 20;

function bad(message: string): never {
  throw new EdgefleetError('BAD_REQUEST', message);
}

function number(value: string | undefined, what: string, check: (n: number) => boolean, expected: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!check(n)) bad(`${what} is "${value}", expected ${expected}`);
  return n;
}

const integer = (value: string | undefined, what: string, min: number, max: number) =>
  number(value, what, (n) => Number.isInteger(n) && n >= min && n <= max, `an integer from ${min} to ${max}`);

export function driftConfig(values: Partial<Record<DriftFlag, string>>, env: Record<string, string | undefined>): { drift: DriftConfig } {
  const switchValue = (values.drift ?? env.EDGEFLEET_DRIFT ?? 'on').toLowerCase();
  if (switchValue !== 'on' && switchValue !== 'off') bad(`drift (--drift, EDGEFLEET_DRIFT) is "${values.drift ?? env.EDGEFLEET_DRIFT}", expected on or off`);
  const windowSec = number(
    values['drift-window-sec'] ?? env.EDGEFLEET_DRIFT_WINDOW_SEC,
    'drift window (--drift-window-sec, EDGEFLEET_DRIFT_WINDOW_SEC)',
    (n) => Number.isFinite(n) && n >= MIN_WINDOW_SEC && n <= 24 * 3600,
    `a number of seconds from ${MIN_WINDOW_SEC} to ${24 * 3600}`,
  );
  const windowRequests = integer(
    values['drift-window-requests'] ?? env.EDGEFLEET_DRIFT_WINDOW_REQUESTS,
    'drift window requests (--drift-window-requests, EDGEFLEET_DRIFT_WINDOW_REQUESTS)',
    1,
    10_000_000,
  );
  const max = MAX_FIELD_SAMPLES_PER_WINDOW;
  const random = integer(values['field-samples-random'] ?? env.EDGEFLEET_FIELD_SAMPLES_RANDOM, 'random field samples per window (--field-samples-random, EDGEFLEET_FIELD_SAMPLES_RANDOM)', 0, max) ?? 0;
  const hard = integer(values['field-samples-hard'] ?? env.EDGEFLEET_FIELD_SAMPLES_HARD, 'hard field samples per window (--field-samples-hard, EDGEFLEET_FIELD_SAMPLES_HARD)', 0, max) ?? 0;
  const hardMargin =
    number(
      values['hard-example-margin'] ?? env.EDGEFLEET_HARD_EXAMPLE_MARGIN,
      'hard example margin (--hard-example-margin, EDGEFLEET_HARD_EXAMPLE_MARGIN)',
      (n) => Number.isFinite(n) && n >= 0 && n <= 1,
      'a number from 0 to 1',
    ) ?? 0.1;
  return {
    drift: {
      enabled: switchValue === 'on',
      ...(windowSec === undefined ? {} : { windowSec }),
      ...(windowRequests === undefined ? {} : { windowRequests }),
      ...(random + hard === 0 ? {} : { fieldSamples: { random, hard, hardMargin } }),
    },
  };
}
