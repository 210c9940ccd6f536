import { describe, expect, it } from 'vitest';
import { parseCommand, USAGE } from '../src/config.js';

const run = (argv: string[], env: Record<string, string> = {}) => {
  const c = parseCommand(['run', ...argv], env);
  if (c.command !== 'run') throw new Error('expected run');
  return c.config;
};

describe('drift configuration', () => {
  it('tracks drift by default with the reporter defaults and no field samples', () => {
    expect(run([]).drift).toEqual({ enabled: true });
  });

  it('reads the environment, and flags override it', () => {
    const env = {
      EDGEFLEET_DRIFT: 'on',
      EDGEFLEET_DRIFT_WINDOW_SEC: '30',
      EDGEFLEET_DRIFT_WINDOW_REQUESTS: '200',
      EDGEFLEET_FIELD_SAMPLES_RANDOM: '2',
      EDGEFLEET_FIELD_SAMPLES_HARD: '3',
      EDGEFLEET_HARD_EXAMPLE_MARGIN: '0.25',
    };
    expect(run([], env).drift).toEqual({ enabled: true, windowSec: 30, windowRequests: 200, fieldSamples: { random: 2, hard: 3, hardMargin: 0.25 } });
    expect(run(['--drift', 'off', '--drift-window-sec', '15', '--field-samples-hard', '0', '--field-samples-random', '0'], env).drift).toEqual({
      enabled: false,
      windowSec: 15,
      windowRequests: 200,
    });
    expect(run([], { EDGEFLEET_DRIFT: 'OFF' }).drift?.enabled).toBe(false);
    expect(run([], { EDGEFLEET_FIELD_SAMPLES_HARD: '1' }).drift?.fieldSamples).toEqual({ random: 0, hard: 1, hardMargin: 0.1 });
  });

  it('names the flag and the variable of a bad value, and what was expected', () => {
    expect(() => run([], { EDGEFLEET_DRIFT: 'maybe' })).toThrow(/drift \(--drift, EDGEFLEET_DRIFT\) is "maybe", expected on or off/);
    // One outbox record per model per window: shorter than 10 s is refused.
    expect(() => run([], { EDGEFLEET_DRIFT_WINDOW_SEC: '5' })).toThrow(/drift window \(--drift-window-sec, EDGEFLEET_DRIFT_WINDOW_SEC\) is "5", expected a number of seconds from 10 to 86400/);
    expect(run([], { EDGEFLEET_DRIFT_WINDOW_SEC: '10' }).drift?.windowSec).toBe(10);
    expect(() => run(['--drift-window-requests', '1.5'])).toThrow(/EDGEFLEET_DRIFT_WINDOW_REQUESTS\) is "1.5", expected an integer from 1 to 10000000/);
    expect(() => run([], { EDGEFLEET_FIELD_SAMPLES_RANDOM: '-1' })).toThrow(/EDGEFLEET_FIELD_SAMPLES_RANDOM\) is "-1", expected an integer from 0 to 20/);
    expect(() => run(['--field-samples-hard', '21'])).toThrow(/EDGEFLEET_FIELD_SAMPLES_HARD\) is "21", expected an integer from 0 to 20/);
    expect(() => run([], { EDGEFLEET_FIELD_SAMPLES_HARD: 'lots' })).toThrow(/EDGEFLEET_FIELD_SAMPLES_HARD\) is "lots"/);
    expect(() => run(['--hard-example-margin', '2'])).toThrow(/hard example margin \(--hard-example-margin, EDGEFLEET_HARD_EXAMPLE_MARGIN\) is "2", expected a number from 0 to 1/);
  });

  it('lists every drift variable in the usage text', () => {
    for (const name of ['EDGEFLEET_DRIFT ', 'EDGEFLEET_DRIFT_WINDOW_SEC', 'EDGEFLEET_DRIFT_WINDOW_REQUESTS', 'EDGEFLEET_FIELD_SAMPLES_RANDOM', 'EDGEFLEET_FIELD_SAMPLES_HARD', 'EDGEFLEET_HARD_EXAMPLE_MARGIN', '--drift-window-sec']) {
      expect(USAGE).toContain(name);
    }
  });
});
