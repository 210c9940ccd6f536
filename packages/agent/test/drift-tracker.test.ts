import { describe, expect, it } from 'vitest';
import type { TensorSpec } from '@edgefleet/shared';
import { certainty, createDriftTracker, FIELD_SAMPLE_BUDGET_BYTES, MAX_STAGED_VALUES, requestRows } from '../src/inference/drift-tracker.js';
import type { RunItem, WireTensor } from '../src/inference/worker-protocol.js';
import { baselineFor, expectedSummary, type Served, type Signature } from './support/drift-baseline.js';

// The worker's drift tracker without a worker: stage before the reply, commit after it.

const signature: Signature = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] } as TensorSpec],
  outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 3] } as TensorSpec],
};

/** Deterministic rows and a softmax over them as the "model output" (x itself as logits). */
function request(seed: number, rows: number, spread = 1): Served & { wire: { inputs: WireTensor[]; outputs: WireTensor[] } } {
  const x = new Float32Array(rows * 3);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(seed * 12.9898 + i * 78.233) * spread;
  const probs = new Float32Array(rows * 3);
  for (let r = 0; r < rows; r++) {
    const e = [0, 1, 2].map((k) => Math.exp(x[r * 3 + k]!));
    const sum = e.reduce((a, b) => a + b, 0);
    e.forEach((v, k) => (probs[r * 3 + k] = v / sum));
  }
  const inputs = [{ name: 'x', dims: [rows, 3], data: x }];
  const outputs = [{ name: 'probs', dims: [rows, 3], data: probs }];
  return {
    inputs,
    outputs,
    wire: {
      inputs: [{ name: 'x', type: 'float32', dims: [rows, 3], data: x.slice() }],
      outputs: [{ name: 'probs', type: 'float32', dims: [rows, 3], data: probs.slice() }],
    },
  };
}

const reference = Array.from({ length: 200 }, (_, i) => request(1000 + i, 1, 2));
const baseline = baselineFor(signature, reference);

/** As the reply does: the output buffers move away (detached) between stage and commit. */
function detachOutputs(items: RunItem[]): void {
  for (const item of items) if ('outputs' in item) for (const o of item.outputs) structuredClone(o.data.buffer, { transfer: [o.data.buffer as ArrayBuffer] });
}

describe('drift tracker', () => {
  it('adds every row of the successful requests of a run, reading outputs before they are transferred away', () => {
    const tracker = createDriftTracker({ baseline, ...signature }, 1000);
    const runs = [[request(1, 1), request(2, 3), request(3, 2)], [request(4, 5)], [request(5, 1), request(6, 4)]];
    const served: Served[] = [];
    for (const run of runs) {
      const batch = run.map((r) => r.wire.inputs);
      // The second request of each batched run failed: it must not count.
      const items: RunItem[] = run.map((r, i) => (i === 1 && run.length > 1 ? { error: 'failed' } : { outputs: r.wire.outputs }));
      served.push(...run.filter((_, i) => 'outputs' in items[i]!));
      tracker.stage(batch, items);
      detachOutputs(items);
      for (const item of items) if ('outputs' in item) expect(item.outputs[0]!.data.length).toBe(0);
      tracker.commit(batch, items);
    }
    const { summary, samples } = tracker.take(5000);
    const expected = expectedSummary(signature, baseline, served);
    expect(summary).not.toBeNull();
    expect(summary!.counts).toEqual(expected.counts);
    expect(summary!.sums).toEqual(expected.sums);
    expect(summary!.missing).toEqual(expected.missing);
    expect(summary!.window).toEqual({ start: 1000, end: 5000 });
    expect(summary!.baseline).toBe(expected.baseline);
    expect(samples).toEqual([]);
    // A new window: nothing served since the take.
    expect(tracker.take(6000).summary).toBeNull();
  });

  it('refuses a baseline without an extraction or one that does not fit the model', () => {
    const { extraction: _, ...bare } = baseline;
    expect(() => createDriftTracker({ baseline: bare, ...signature })).toThrow(/extraction/);
    const wider = { ...baseline, extraction: { ...baseline.extraction!, inputs: [{ tensor: 'x', mode: 'elements' as const, size: 4 }] } };
    expect(() => createDriftTracker({ baseline: wider, ...signature })).toThrow(/3 features .* yields 4/);
  });

  it('reads margin and entropy from probabilities as they are and from logits through a softmax', () => {
    const out = new Float64Array(2);
    certainty(new Float32Array([0.7, 0.2, 0.1]), 0, 3, false, out);
    expect(out[0]).toBeCloseTo(0.5, 6);
    expect(out[1]).toBeCloseTo(-(0.7 * Math.log(0.7) + 0.2 * Math.log(0.2) + 0.1 * Math.log(0.1)), 6);
    certainty(new Float32Array([9, 2, 0, 0]), 1, 3, false, out); // logits [2, 0, 0] from offset 1
    const e = [Math.exp(2), 1, 1];
    const p = e.map((v) => v / (e[0]! + 2));
    expect(out[0]).toBeCloseTo(p[0]! - p[1]!, 6);
    certainty(new Float32Array([0.5, 0.5]), 0, 2, false, out);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(Math.log(2), 9);
  });

  it('keeps a bounded random reservoir and the most uncertain rows as field samples, copied one row each', () => {
    const fieldSamples = { randomPerWindow: 4, hardPerWindow: 3, hardMargin: 0.3 };
    const tracker = createDriftTracker({ baseline, ...signature, fieldSamples });
    const served = Array.from({ length: 60 }, (_, i) => request(i, 1 + (i % 3), 0.6));
    const margins: { margin: number; row: number[] }[] = [];
    const out = new Float64Array(2);
    for (const r of served) {
      const rows = requestRows(r.wire.inputs);
      for (let k = 0; k < rows; k++) {
        certainty(r.outputs[0]!.data as Float32Array, k * 3, 3, false, out);
        margins.push({ margin: out[0]!, row: Array.from((r.inputs[0]!.data as Float32Array).slice(k * 3, k * 3 + 3)) });
      }
      const items: RunItem[] = [{ outputs: r.wire.outputs }];
      tracker.stage([r.wire.inputs], items);
      detachOutputs(items);
      tracker.commit([r.wire.inputs], items);
    }
    const { samples } = tracker.take(Date.now());
    const random = samples.filter((s) => s.reason === 'random');
    const hard = samples.filter((s) => s.reason === 'hard');
    expect(random).toHaveLength(4);
    const lowest = margins.filter((m) => m.margin < 0.3).sort((a, b) => a.margin - b.margin).slice(0, 3);
    expect(lowest.length).toBe(3); // the data has hard rows, so the test tests something
    expect(hard.map((s) => s.margin).sort()).toEqual(lowest.map((m) => m.margin).sort());
    for (const s of samples) {
      expect(s.inputs).toHaveLength(1);
      expect(s.inputs[0]!.dims).toEqual([1, 3]);
      expect(s.inputs[0]!.data.buffer.byteLength).toBe(12); // its own buffer: one row, not the request
      const row = Array.from(s.inputs[0]!.data as Float32Array);
      expect(margins.some((m) => m.row.every((v, i) => v === row[i]))).toBe(true);
      expect(s.entropy).toBeGreaterThan(0);
    }
    for (const s of hard) expect(margins.find((m) => m.margin === s.margin)!.row).toEqual(Array.from(s.inputs[0]!.data as Float32Array));
    expect(tracker.take(Date.now()).samples).toEqual([]);
  });

  it('tracks every row of a huge run while its staging storage stays bounded, and reuses it', () => {
    const tracker = createDriftTracker({ baseline, ...signature, fieldSamples: { randomPerWindow: 2, hardPerWindow: 2, hardMargin: 0.3 } });
    const maxRows = Math.floor(MAX_STAGED_VALUES / baseline.outputs.length);
    const huge = request(7, maxRows + 5, 0.6); // past the staging bound: most rows tracked before the reply
    const small = request(8, 3, 0.6);
    for (const r of [huge, small]) {
      const items: RunItem[] = [{ outputs: r.wire.outputs.map((o) => ({ ...o, data: o.data.slice() })) }];
      tracker.stage([r.wire.inputs], items);
      detachOutputs(items);
      tracker.commit([r.wire.inputs], items);
      // Bounded by the staging limit (outputs and margin/entropy per row), whatever the run carried.
      expect(tracker.stagingBytes()).toBeLessThanOrEqual(8 * (MAX_STAGED_VALUES + 2 * maxRows));
    }
    const { summary } = tracker.take(Date.now());
    const expected = expectedSummary(signature, baseline, [huge, small]);
    expect(summary!.counts).toEqual(expected.counts);
    expect(summary!.missing).toEqual(expected.missing);
    summary!.sums.forEach((v, i) => expect(v).toBeCloseTo(expected.sums[i]!, 6));
  });

  it('keeps field samples within the byte budget per window, one copy for a row kept both at random and as hard', () => {
    const wide: Signature = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 262_144] } as TensorSpec], // 1 MB a row
      outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 3] } as TensorSpec],
    };
    const row = (seed: number): Served & { wire: { inputs: WireTensor[]; outputs: WireTensor[] } } => {
      const x = new Float32Array(262_144).fill(seed / 100);
      const probs = Float32Array.from([0.34, 0.33, 0.33]); // margin 0.01: every row is a hard example
      return {
        inputs: [{ name: 'x', dims: [1, 262_144], data: x }],
        outputs: [{ name: 'probs', dims: [1, 3], data: probs }],
        wire: { inputs: [{ name: 'x', type: 'float32', dims: [1, 262_144], data: x }], outputs: [{ name: 'probs', type: 'float32', dims: [1, 3], data: probs.slice() }] },
      };
    };
    const wideBaseline = baselineFor(wide, Array.from({ length: 20 }, (_, i) => row(i)));
    const tracker = createDriftTracker({ baseline: wideBaseline, ...wide, fieldSamples: { randomPerWindow: 20, hardPerWindow: 20, hardMargin: 0.5 } });
    for (let i = 0; i < 40; i++) {
      const r = row(i);
      const items: RunItem[] = [{ outputs: r.wire.outputs }];
      tracker.stage([r.wire.inputs], items);
      detachOutputs(items);
      tracker.commit([r.wire.inputs], items);
    }
    const { samples } = tracker.take(Date.now());
    const copies = new Set(samples.map((s) => s.inputs));
    const held = [...copies].reduce((n, inputs) => n + inputs[0]!.data.byteLength, 0);
    expect(held).toBeLessThanOrEqual(FIELD_SAMPLE_BUDGET_BYTES);
    expect(held).toBeGreaterThan(FIELD_SAMPLE_BUDGET_BYTES / 2); // the budget is used, not everything refused
    const random = samples.filter((s) => s.reason === 'random');
    const hard = samples.filter((s) => s.reason === 'hard');
    expect(random.some((s) => hard.some((h) => h.inputs === s.inputs))).toBe(true);
    expect(copies.size).toBeLessThan(samples.length);
  });
});
