import { describe, expect, it } from 'vitest';
import {
  checkGoldenInputSize,
  decodeGoldenFile,
  encodeGoldenFile,
  goldenInputs,
  goldenInputTensors,
  MAX_GOLDEN_ELEMENTS,
  needsGoldenFile,
  typedArrayFor,
  type TensorSpec,
} from '../src/index.js';

const specs: TensorSpec[] = [
  { name: 'image', datatype: 'FP32', shape: [-1, 3, 5, 7] },
  { name: 'ids', datatype: 'INT64', shape: [2, 9] },
  { name: 'mask', datatype: 'BOOL', shape: [3] },
  { name: 'half', datatype: 'FP16', shape: [1, 4] },
];

describe('golden input bounds', () => {
  it('refuses, before allocating, inputs over MAX_GOLDEN_ELEMENTS, naming the input and the bound', () => {
    expect(() => checkGoldenInputSize([{ name: 'x', datatype: 'FP32', shape: [1, 300_000_000] }])).toThrow(
      `input x of shape [1,300000000] FP32 needs 300000000 elements for its golden vector; golden inputs are limited to ${MAX_GOLDEN_ELEMENTS} elements in all (64 MB as FP32)`,
    );
    // The bound is over all inputs together.
    const half = { datatype: 'FP32', shape: [MAX_GOLDEN_ELEMENTS / 2 + 1] };
    expect(() => checkGoldenInputSize([{ name: 'a', ...half }, { name: 'b', ...half }])).toThrow(/input b/);
    expect(() => goldenInputTensors([{ name: 'x', datatype: 'FP32', shape: [2 ** 40, 2 ** 40] }])).toThrow(/golden inputs are limited/);
    expect(() => checkGoldenInputSize([{ name: 'x', datatype: 'FP32', shape: [1, 3, 640, 640] }])).not.toThrow();
  });

  it('fills typed arrays with exactly the values of the number[] form', () => {
    const typed = goldenInputTensors(specs, 9);
    const numeric = goldenInputs(specs, 9);
    for (const [i, t] of typed.entries()) {
      const n = numeric[i]!;
      expect(t.shape).toEqual(n.shape);
      expect(Buffer.from(t.data.buffer).equals(Buffer.from(typedArrayFor(n.datatype, n.values).buffer))).toBe(true);
    }
  });
});

describe('golden file', () => {
  const inputs = goldenInputTensors(specs);
  const outputs = goldenInputTensors([{ name: 'probs', datatype: 'FP64', shape: [1, 3] }], 3);

  it('round-trips every datatype exactly', () => {
    const decoded = decodeGoldenFile(encodeGoldenFile({ inputs, outputs }));
    expect(decoded.inputs.map((t) => [t.name, t.datatype, t.shape])).toEqual(inputs.map((t) => [t.name, t.datatype, t.shape]));
    for (const [i, t] of [...decoded.inputs, ...decoded.outputs].entries()) {
      const want = [...inputs, ...outputs][i]!;
      expect(t.data.constructor).toBe(want.data.constructor);
      expect(Array.from(t.data as ArrayLike<number | bigint>)).toEqual(Array.from(want.data as ArrayLike<number | bigint>));
    }
  });

  it('refuses a file that does not match its layout, naming the problem', () => {
    const good = encodeGoldenFile({ inputs, outputs });
    expect(() => decodeGoldenFile(new TextEncoder().encode('{"inputs":[]}'))).toThrow(/does not start with EFGOLD01/);
    expect(() => decodeGoldenFile(good.subarray(0, good.byteLength - 8))).toThrow(/needs \d+ bytes/);
    const longer = new Uint8Array(good.byteLength + 8);
    longer.set(good);
    expect(() => decodeGoldenFile(longer)).toThrow(/header describes/);
    const hugeHeader = new Uint8Array(good);
    new DataView(hugeHeader.buffer).setUint32(8, 0xffffffff, true);
    expect(() => decodeGoldenFile(hugeHeader)).toThrow(/header of 4294967295 bytes/);
  });

  it('is needed only when the tensors are over 64 KB together', () => {
    expect(needsGoldenFile(goldenInputTensors([{ name: 'x', datatype: 'FP32', shape: [1, 16_384] }]))).toBe(false);
    expect(needsGoldenFile(goldenInputTensors([{ name: 'x', datatype: 'FP32', shape: [1, 16_385] }]))).toBe(true);
    const halves = goldenInputTensors([
      { name: 'a', datatype: 'FP32', shape: [1, 8_192] },
      { name: 'b', datatype: 'FP32', shape: [1, 8_193] },
    ]);
    expect(needsGoldenFile(halves)).toBe(true);
  });
});
