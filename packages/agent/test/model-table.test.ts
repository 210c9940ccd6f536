import { describe, expect, it } from 'vitest';
import { createModelTable } from '../src/inference/model-table.js';
import { RecentWindow } from '../src/inference/recent-window.js';
import type { LoadedModel } from '../src/inference/types.js';

const model = (name: string, version: string): LoadedModel => ({
  name,
  version,
  sha256: `${name}-${version}`,
  profile: 'fp32',
  path: '/nowhere',
  inputs: [],
  outputs: [],
  infer: async () => [],
  close: async () => undefined,
});

describe('model table: standby slot, recent requests, listeners', () => {
  it('keeps one standby per name beside the active version; activating the standby empties the slot', () => {
    const table = createModelTable();
    const [v1, v2, v3] = [model('m', '1'), model('m', '2'), model('m', '3')];
    table.activate(v1);
    expect(table.activate(v2)).toBe(v1);
    expect(table.setStandby(v1)).toBeUndefined();
    expect(table.standby('m')).toBe(v1);
    expect(table.list()).toEqual([v2]);
    expect(table.setStandby(v3)).toBe(v1);
    expect(table.takeStandby('m', v1)).toBeUndefined();
    table.setStandby(v1);
    expect(table.activate(v1)).toBe(v2);
    expect(table.standby('m')).toBeUndefined();
    expect(table.listStandby()).toEqual([]);
  });

  it("keeps the recent requests of the active and standby versions, drops others' at the next snapshot", () => {
    const table = createModelTable();
    const [v1, v2] = [model('m', '1'), model('m', '2')];
    table.activate(v1);
    for (let i = 1; i <= 100; i++) table.record('m', '1', i, i % 10 !== 0);
    expect(table.recent('m', '1')).toEqual({ requests: 100, errors: 10, p99Ms: 99 });
    table.activate(v2);
    table.setStandby(v1);
    table.snapshot();
    expect(table.recent('m', '1').requests).toBe(100);
    table.takeStandby('m');
    table.snapshot();
    expect(table.recent('m', '1').requests).toBe(0);
  });

  it('tells listeners of every recorded request until they unsubscribe', () => {
    const table = createModelTable();
    const seen: string[] = [];
    const off = table.onRecord((name, version, ms, ok) => seen.push(`${name}@${version} ${ms} ${ok}`));
    table.record('m', '1', 3, true);
    off();
    table.record('m', '1', 4, false);
    expect(seen).toEqual(['m@1 3 true']);
  });

  it('a recent window holds only the last requests', () => {
    const w = new RecentWindow(4);
    for (const ms of [100, 100, 1, 2, 3]) w.add(ms, true);
    w.add(50, false);
    expect(w.stats()).toEqual({ requests: 4, errors: 1, p99Ms: 3 });
  });
});
