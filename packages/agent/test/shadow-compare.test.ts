import { describe, expect, it } from 'vitest';
import { addSample, compareSample, emptyTally, MAX_REPORTED_DIFF, median, summarize } from '../src/inference/shadow-compare.js';
import type { Tensor } from '../src/inference/types.js';
import { fromHalf, toHalf } from '../src/inference/half-float.js';

const fp32 = (name: string, shape: number[], values: number[]): Tensor => ({ name, datatype: 'FP32', shape, data: Float32Array.from(values) });

describe('shadow comparison of one request', () => {
  it('judges class scores by top-1 per row, whatever the scores themselves', () => {
    const active = [fp32('probs', [2, 3], [0.7, 0.2, 0.1, 0.1, 0.1, 0.8])];
    expect(compareSample(active, [fp32('probs', [2, 3], [0.4, 0.35, 0.25, 0.3, 0.2, 0.5])])).toEqual({ agrees: true, maxAbsDiff: expect.closeTo(0.3, 6) });
    // One row of two picks another class: the request disagrees.
    expect(compareSample(active, [fp32('probs', [2, 3], [0.7, 0.2, 0.1, 0.5, 0.1, 0.4])]).agrees).toBe(false);
  });

  it('uses the first output for top-1 and every output for maxAbsDiff', () => {
    const active = [fp32('probs', [1, 2], [0.9, 0.1]), fp32('embedding', [1, 2], [1, 2])];
    const candidate = [fp32('embedding', [1, 2], [1, 7]), fp32('probs', [1, 2], [0.8, 0.2])];
    expect(compareSample(active, candidate)).toEqual({ agrees: true, maxAbsDiff: 5 });
  });

  it('judges other outputs element by element within 1e-3·(1+|active|)', () => {
    const active = [fp32('score', [2, 1], [100, 0])];
    expect(compareSample(active, [fp32('score', [2, 1], [100.1, 0.0009])]).agrees).toBe(true);
    expect(compareSample(active, [fp32('score', [2, 1], [100.2, 0])]).agrees).toBe(false);
    expect(compareSample(active, [fp32('score', [2, 1], [100, 0.0011])]).agrees).toBe(false);
    expect(compareSample([fp32('s', [], [3])], [fp32('s', [], [3])]).agrees).toBe(true);
  });

  it('compares integer outputs element by element for equality, never by argmax position, int64 exactly', () => {
    const labels: Tensor[] = [{ name: 'label', datatype: 'INT64', shape: [3], data: BigInt64Array.from([1n, 2n, 3n]) }];
    expect(compareSample(labels, [{ ...labels[0]!, data: BigInt64Array.from([1n, 2n, 3n]) }])).toEqual({ agrees: true, maxAbsDiff: 0 });
    // The largest label is still the last one, yet the third request got another class.
    expect(compareSample(labels, [{ ...labels[0]!, data: BigInt64Array.from([1n, 2n, 5n]) }])).toEqual({ agrees: false, maxAbsDiff: 2 });
    // Rank 2 does not make integers class scores: [1, 3] counts with the same argmax still differ.
    const counts: Tensor[] = [{ name: 'counts', datatype: 'INT32', shape: [1, 3], data: Int32Array.from([0, 1, 7]) }];
    expect(compareSample(counts, [{ ...counts[0]!, data: Int32Array.from([0, 2, 7]) }]).agrees).toBe(false);
    // Past 2^53 a double cannot tell these apart.
    const big: Tensor[] = [{ name: 'id', datatype: 'INT64', shape: [1], data: BigInt64Array.from([2n ** 60n]) }];
    expect(compareSample(big, [{ ...big[0]!, data: BigInt64Array.from([2n ** 60n + 1n]) }]).agrees).toBe(false);
  });

  it('judges a rank-1 float output element by element, not by top-1', () => {
    const active = [fp32('scores', [3], [0.7, 0.2, 0.1])];
    expect(compareSample(active, [fp32('scores', [3], [0.5, 0.3, 0.2])]).agrees).toBe(false);
    expect(compareSample(active, [fp32('scores', [3], [0.7, 0.2, 0.1])]).agrees).toBe(true);
  });

  it('outputs of another shape disagree, even with as many elements', () => {
    const active = [fp32('probs', [2, 3], [0.7, 0.2, 0.1, 0.1, 0.1, 0.8])];
    expect(compareSample(active, [fp32('probs', [3, 2], [0.7, 0.2, 0.1, 0.1, 0.1, 0.8])])).toEqual({ agrees: false, maxAbsDiff: MAX_REPORTED_DIFF });
    expect(compareSample([fp32('v', [1, 2], [1, 2])], [fp32('v', [2], [1, 2])]).agrees).toBe(false);
  });

  it('compares FP16 outputs by their values, not by their raw bits', () => {
    const fp16 = (name: string, shape: number[], values: number[]): Tensor => ({ name, datatype: 'FP16', shape, data: Uint16Array.from(values, toHalf) });
    // 1.0 against 1.01 is 0.01 apart, over the tolerance; as bits they are only 10 apart.
    const score = compareSample([fp16('score', [1, 1], [1])], [fp16('score', [1, 1], [1.01])]);
    expect(score.agrees).toBe(false);
    expect(score.maxAbsDiff).toBeCloseTo(0.01, 3);
    // Both pick class 0; as bits a negative score looks larger than any positive one.
    expect(compareSample([fp16('logits', [1, 2], [0.5, -1])], [fp16('logits', [1, 2], [0.6, 0.5])]).agrees).toBe(true);
    // An FP16 candidate of an FP32 model is compared by value too.
    expect(compareSample([fp32('score', [1, 1], [1])], [fp16('score', [1, 1], [1])])).toEqual({ agrees: true, maxAbsDiff: 0 });
  });

  it('equal infinities agree: an identical candidate of a model with log(0) outputs is no difference at all', () => {
    const logits = [fp32('logp', [1, 1], [Number.NEGATIVE_INFINITY]), fp32('clamp', [2, 1], [Number.POSITIVE_INFINITY, 1])];
    expect(compareSample(logits, logits)).toEqual({ agrees: true, maxAbsDiff: 0 });
    expect(compareSample([fp32('v', [1], [Number.POSITIVE_INFINITY])], [fp32('v', [1], [Number.NEGATIVE_INFINITY])])).toEqual({ agrees: false, maxAbsDiff: MAX_REPORTED_DIFF });
    // An infinite active value does not stretch the tolerance to everything.
    expect(compareSample([fp32('v', [1], [Number.POSITIVE_INFINITY])], [fp32('v', [1], [5])]).agrees).toBe(false);
  });

  it('a missing output, another size or NaN disagrees, with a finite maxAbsDiff', () => {
    const active = [fp32('probs', [1, 2], [0.9, 0.1])];
    expect(compareSample(active, [fp32('other', [1, 2], [0.9, 0.1])])).toEqual({ agrees: false, maxAbsDiff: MAX_REPORTED_DIFF });
    expect(compareSample(active, [fp32('probs', [1, 3], [0.9, 0.1, 0])])).toEqual({ agrees: false, maxAbsDiff: MAX_REPORTED_DIFF });
    const nan = compareSample([fp32('v', [1], [1])], [fp32('v', [1], [Number.NaN])]);
    expect(nan).toEqual({ agrees: false, maxAbsDiff: MAX_REPORTED_DIFF });
  });

  it('class scores with NaN disagree on top-1, even where the active version picks class 0', () => {
    const active = [fp32('probs', [2, 2], [0.9, 0.1, 0.2, 0.8])];
    // A broken candidate's NaN row would otherwise "pick" index 0, the active version's class in row 0.
    expect(compareSample(active, [fp32('probs', [2, 2], [Number.NaN, Number.NaN, 0.3, 0.7])])).toEqual({ agrees: false, maxAbsDiff: MAX_REPORTED_DIFF });
    expect(compareSample(active, [fp32('probs', [2, 2], [0.9, Number.NaN, 0.3, 0.7])]).agrees).toBe(false);
    const nanRow = [fp32('probs', [1, 2], [Number.NaN, Number.NaN])];
    expect(compareSample(nanRow, nanRow).agrees).toBe(false);
  });
});

describe('half-precision values', () => {
  it('round-trip exactly representable values, round to nearest even, and keep infinities and NaN', () => {
    for (const v of [0, 1, -2, 0.5, 65504, 2 ** -24, -(2 ** -14)]) expect(fromHalf(toHalf(v))).toBe(v);
    expect(fromHalf(toHalf(1 + 2 ** -11))).toBe(1);
    expect(fromHalf(toHalf(70000))).toBe(Number.POSITIVE_INFINITY);
    expect(Number.isNaN(fromHalf(toHalf(Number.NaN)))).toBe(true);
  });
});

describe('shadow tally', () => {
  it('reports samples, agreement, the largest difference and both medians', () => {
    const tally = emptyTally();
    addSample(tally, { comparison: { agrees: true, maxAbsDiff: 0.01 }, activeMs: 2, candidateMs: 4 });
    addSample(tally, { comparison: { agrees: false, maxAbsDiff: 0.5 }, activeMs: 4, candidateMs: 8 });
    addSample(tally, { comparison: { agrees: true, maxAbsDiff: 0.1 }, activeMs: 3, candidateMs: 6 });
    addSample(tally, { failed: true, activeMs: 10 });
    expect(summarize(tally)).toEqual({ samples: 4, agreement: 0.5, maxAbsDiff: 0.5, activeP50Ms: 3.5, candidateP50Ms: 6 });
  });

  it('with no samples reports agreement 0: nothing was compared', () => {
    expect(summarize(emptyTally())).toEqual({ samples: 0, agreement: 0, maxAbsDiff: 0, activeP50Ms: 0, candidateP50Ms: 0 });
  });

  it('median of odd and even counts', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});
