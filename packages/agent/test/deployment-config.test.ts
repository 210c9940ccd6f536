import { describe, expect, it } from 'vitest';
import { parseCommand } from '../src/config.js';

describe('agent config: deployment settings', () => {
  it('leaves them unset by default, so the runner keeps its own defaults', () => {
    const d = parseCommand(['run'], {});
    expect(d.command === 'run' && d.config.deployment).toBeUndefined();
  });

  it('reads env, then flags', () => {
    const env = { EDGEFLEET_STANDBY: 'off', EDGEFLEET_STANDBY_KEEP_SEC: '120', EDGEFLEET_MAX_DEFER_SEC: '30' };
    expect(parseCommand(['run'], env)).toMatchObject({ config: { deployment: { standby: 'off', standbyKeepSec: 120, maxDeferSec: 30 } } });
    expect(parseCommand(['run', '--standby', 'on', '--max-defer-sec', '0'], env)).toMatchObject({ config: { deployment: { standby: 'on', standbyKeepSec: 120, maxDeferSec: 0 } } });
  });

  it('names a bad value and what was expected', () => {
    expect(() => parseCommand(['run', '--standby', 'maybe'], {})).toThrow(/standby \(EDGEFLEET_STANDBY\) is "maybe", expected one of auto, on, off/);
    expect(() => parseCommand(['run'], { EDGEFLEET_MAX_DEFER_SEC: '-1' })).toThrow(/max defer time \(EDGEFLEET_MAX_DEFER_SEC\) is "-1", expected an integer from 0 to 604800/);
  });
});
