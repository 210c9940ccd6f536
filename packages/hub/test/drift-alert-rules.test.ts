import type { DriftFeatureScore } from '@edgefleet/shared';
import { describe, expect, it } from 'vitest';
import { alertDecision, alertFeatures, alertMessage, previousOnBaseline, staleAlertMessage, type WindowVerdict } from '../src/drift/alert-rules.js';
import { pruneBound } from '../src/drift/drift-upkeep.js';
import { addToWindow, type PendingWindow } from '../src/drift/evaluation-window.js';
import { prng, referenceBaseline, windowSummary } from './drift-evaluation-fixtures.js';

const feature = (name: string, score: number): DriftFeatureScore => ({
  name, role: 'input', kind: 'numeric', psi: score * 0.1, js: 0, ks: 0, wasserstein: 0, chi2: null, score, drifted: score > 1,
});
const verdict = (...features: DriftFeatureScore[]): WindowVerdict => {
  const sorted = [...features].sort((a, b) => b.score - a.score);
  return { over: sorted.some((f) => f.drifted), score: sorted[0]?.score ?? 0, features: sorted };
};
const OVER = verdict(feature('a', 2), feature('b', 0.5));
const UNDER = verdict(feature('a', 0.4), feature('b', 0.5));

/** Feeds a sequence of windows through the rules with the alert state they imply, answering each decision. */
function decisions(windows: readonly WindowVerdict[]): string[] {
  let active = false;
  let previous: WindowVerdict | undefined;
  return windows.map((w) => {
    const d = alertDecision(active, previous, w);
    if (d === 'raise') active = true;
    if (d === 'clear') active = false;
    previous = w;
    return d;
  });
}

describe('evaluation windows', () => {
  const baseline = referenceBaseline(5000, prng(1));
  const random = prng(2);

  it('merges summaries until the minimum and closes the window with the summary that reaches it, carrying nothing over', () => {
    let pending: PendingWindow | null = null;
    const closed: PendingWindow[] = [];
    for (let i = 0; i < 7; i++) {
      const step = addToWindow(baseline, pending, windowSummary(baseline, 200, random, { start: i * 1000 }), 500);
      pending = step.pending;
      if (step.closed) closed.push(step.closed);
    }
    // 200, 400, 600 → closed; 200, 400, 600 → closed; 200 pending.
    expect(closed.map((w) => w.samples)).toEqual([600, 600]);
    expect(closed.map((w) => [w.summary.window.start, w.summary.window.end])).toEqual([[0, 3000], [3000, 6000]]);
    expect(pending?.samples).toBe(200);
  });

  it('drops a pending summary made on another baseline layout instead of merging it', () => {
    const stale: PendingWindow = { samples: 300, summary: { ...windowSummary(baseline, 300, random), baseline: 12345 } };
    const step = addToWindow(baseline, stale, windowSummary(baseline, 300, random), 500);
    expect(step).toMatchObject({ droppedStale: true, closed: null, pending: { samples: 300 } });
  });
});

describe('alert rules', () => {
  it('raises only after two consecutive windows over', () => {
    expect(decisions([UNDER, OVER, OVER])).toEqual(['none', 'none', 'raise']);
    expect(decisions([OVER])).toEqual(['none']);
  });

  it('raises nothing for one window over between windows under', () => {
    expect(decisions([UNDER, OVER, UNDER, OVER, UNDER, UNDER])).toEqual(['none', 'none', 'none', 'none', 'none', 'none']);
  });

  it('updates while active and clears after two consecutive windows under, not one', () => {
    expect(decisions([OVER, OVER, OVER, UNDER, OVER, UNDER, UNDER, OVER])).toEqual(['none', 'raise', 'update', 'none', 'update', 'none', 'clear', 'none']);
  });

  it('names the features over in both windows, by their lower score, at most five', () => {
    const previous = verdict(feature('x', 9), feature('p', 3), feature('q', 2.5), feature('r', 2), feature('s', 1.8), feature('t', 1.5), feature('noise', 0.2));
    const current = verdict(feature('x', 0.5), feature('p', 2), feature('q', 4), feature('r', 2.2), feature('s', 1.9), feature('t', 1.2), feature('noise', 3));
    // x and noise were over in one window only; q's lower score (2.5) beats p's (2).
    expect(alertFeatures(previous, current).map((f) => f.name)).toEqual(['q', 'r', 'p', 's', 't']);
    expect(alertFeatures(previous, current)[0]).toEqual({ name: 'q', score: 4, psi: 0.4 });
  });

  it('falls back to the features over in either window when none was over in both', () => {
    const previous = verdict(feature('a', 3), feature('b', 0.1));
    const current = verdict(feature('a', 0.2), feature('b', 1.5));
    expect(alertFeatures(previous, current).map((f) => f.name)).toEqual(['a', 'b']);
  });

  it('says model, version, scope, features and devices in one line', () => {
    const features = [{ name: 'f1', score: 3.456, psi: 0.5 }];
    expect(alertMessage('m', '1', null, ['d1', 'd2'], features)).toBe('drift on m@1 (fleet): f1 (score 3.46); devices over: d1, d2');
    expect(alertMessage('m', '1', 'd1', ['d1'], features)).toBe('drift on m@1 (device d1): f1 (score 3.46)');
    expect(alertMessage('m', '1', null, ['a', 'b', 'c', 'd', 'e', 'f', 'g'], features)).toContain('devices over: a, b, c, d, e and 2 more');
  });
});

describe('windows across a baseline rebuild', () => {
  const BUILT = '2026-12-01T12:00:00.000Z';
  const before = { ...OVER, evaluatedAt: '2026-12-01T11:59:59.999Z' };
  const after = { ...OVER, evaluatedAt: BUILT };

  it('ignores a previous window scored against the baseline before its rebuild', () => {
    expect(previousOnBaseline(before, BUILT)).toBeUndefined();
    expect(previousOnBaseline(after, BUILT)).toBe(after);
    expect(previousOnBaseline(before, undefined)).toBe(before);
    expect(previousOnBaseline(undefined, BUILT)).toBeUndefined();
  });

  it('so one window over on the new baseline after one over on the old raises nothing', () => {
    expect(alertDecision(false, previousOnBaseline(before, BUILT), OVER)).toBe('none');
    expect(alertDecision(false, previousOnBaseline(after, BUILT), OVER)).toBe('raise');
    // Nor does one window under clear an alert raised on the old baseline.
    expect(alertDecision(true, previousOnBaseline({ ...UNDER, evaluatedAt: before.evaluatedAt }, BUILT), UNDER)).toBe('none');
  });
});

describe('upkeep', () => {
  const H = 3600_000;
  it('prunes below the cursor of the newest pass at least the retention old, and keeps the marks from it on', () => {
    const marks = [{ at: 0, cursor: 10 }, { at: 1 * H, cursor: 20 }, { at: 2 * H, cursor: 30 }];
    expect(pruneBound(marks, 6 * H, 6 * H)).toEqual({ below: 10, keep: marks });
    expect(pruneBound(marks, 7 * H, 6 * H)).toEqual({ below: 20, keep: marks.slice(1) });
    expect(pruneBound(marks, 6 * H - 1, 6 * H)).toEqual({ below: null, keep: marks });
    expect(pruneBound([], 100 * H, 6 * H)).toEqual({ below: null, keep: [] });
  });

  it('names the scope, the stale hours and the last window in a stale alert\'s message', () => {
    expect(staleAlertMessage('m', '1', 'dev-1', 24, Date.parse('2026-12-01T00:00:00.000Z'))).toBe(
      'drift alert on m@1 (device dev-1) cleared as stale: no evaluation window for 24 h (last at 2026-12-01T00:00:00.000Z)',
    );
    expect(staleAlertMessage('m', '1', null, 24, null)).toContain('(fleet) cleared as stale');
  });
});
