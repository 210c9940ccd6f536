import { describe, expect, it } from 'vitest';
import { joinBinaryBody, type TensorSpec } from '@edgefleet/shared';
import { MAX_CALIBRATION_BINARY_HEADER_BYTES, MAX_CALIBRATION_SAMPLES, parseCalibration } from '../src/models/calibration-data.js';
import { decodeCalibrationFile, encodeCalibrationFile } from '../src/models/calibration-file.js';

const SPECS: TensorSpec[] = [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }];
const json = (body: unknown) => Buffer.from(JSON.stringify(body));
const input = (shape: number[], data: unknown[], datatype = 'FP32') => ({ name: 'input', datatype, shape, data });
const labels = (data: unknown[], datatype = 'INT64', shape = [data.length]) => ({ name: 'labels', datatype, shape, data });

/** A binary-extension body: each tensor's bytes after the JSON header, in header order. */
function binary(tensors: Array<{ name: string; datatype: string; shape: number[]; bytes: Uint8Array }>, cut = 0) {
  const header = { inputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: t.bytes.byteLength } })) };
  const { body, headerLength } = joinBinaryBody(header, tensors.map((t) => t.bytes));
  return { body: body.subarray(0, body.byteLength - cut), headerLength: String(headerLength) };
}
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe('calibration data', () => {
  it('reads JSON (flat and nested) with INT64 labels, samples along dim 0', () => {
    const set = parseCalibration(json({ inputs: [input([2, 4], [[1, 2, 3, 4], [5, 6, 7, 8]]), labels([3, 0])] }), undefined, SPECS);
    expect(set.samples).toBe(2);
    expect(set.inputs[0]).toMatchObject({ name: 'input', datatype: 'FP32', shape: [2, 4] });
    expect(Array.from(set.inputs[0]!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(set.labels!)).toEqual([3, 0]);
  });

  it('reads the binary tensor extension with INT32 labels and round-trips through the stored file', () => {
    const x = Float32Array.from({ length: 12 }, (_, i) => i / 10);
    const { body, headerLength } = binary([
      { name: 'labels', datatype: 'INT32', shape: [3], bytes: bytesOf(Int32Array.of(1, 2, 9)) },
      { name: 'input', datatype: 'FP32', shape: [3, 4], bytes: bytesOf(x) },
    ]);
    const set = parseCalibration(body, headerLength, SPECS);
    expect(set.samples).toBe(3);
    expect(Array.from(set.inputs[0]!.data as Float32Array)).toEqual(Array.from(x));
    const back = decodeCalibrationFile(encodeCalibrationFile(set));
    expect(back.samples).toBe(3);
    expect(back.inputs[0]!.shape).toEqual([3, 4]);
    expect(Array.from(back.inputs[0]!.data as Float32Array)).toEqual(Array.from(x));
    expect(Array.from(back.labels!)).toEqual([1, 2, 9]);
  });

  it.each([
    ['a body that is not JSON', Buffer.from('{nope'), 'not valid JSON'],
    ['a missing model input', json({ inputs: [labels([1])] }), 'lacks model input "input" FP32 [-1,4]'],
    ['an unknown tensor', json({ inputs: [input([1, 4], [1, 2, 3, 4]), { name: 'extra', datatype: 'FP32', shape: [1], data: [1] }] }), 'unknown tensor "extra"'],
    ['a wrong datatype', json({ inputs: [input([1, 4], [1, 2, 3, 4], 'INT32')] }), 'datatype INT32, the model expects FP32'],
    ['a shape that does not fit', json({ inputs: [input([1, 5], [1, 2, 3, 4, 5])] }), 'dimension 1 is 5, expected 4'],
    ['a wrong rank', json({ inputs: [input([4], [1, 2, 3, 4])] }), 'has rank 1'],
    ['too few values', json({ inputs: [input([2, 4], [1, 2, 3, 4])] }), 'has 4 values, expected 8'],
    ['labels of the wrong length', json({ inputs: [input([1, 4], [1, 2, 3, 4]), labels([1, 2])] }), 'holds 2 samples along dim 0, the other tensors 1'],
    ['negative labels', json({ inputs: [input([1, 4], [1, 2, 3, 4]), labels([-1])] }), 'label 0 is -1'],
    ['float labels', json({ inputs: [input([1, 4], [1, 2, 3, 4]), labels([1], 'FP32')] }), 'expected INT64 or INT32'],
    ['labels of rank 2', json({ inputs: [input([1, 4], [1, 2, 3, 4]), labels([1], 'INT64', [1, 1])] }), 'expected [N]'],
    ['no samples', json({ inputs: [input([0, 4], [])] }), 'holds no samples'],
    ['too many samples', json({ inputs: [input([MAX_CALIBRATION_SAMPLES + 1, 4], [])] }), `at most ${MAX_CALIBRATION_SAMPLES}`],
    ['a string value', json({ inputs: [input([1, 4], [1, 'x', 3, 4])] }), 'data[1] is not a number'],
  ])('refuses %s, naming it', (_what, body, message) => {
    expect(() => parseCalibration(body, undefined, SPECS)).toThrow(message);
  });

  it('refuses truncated binary data, NaN and a header length outside the body', () => {
    const x = Float32Array.from({ length: 8 }, () => 0.5);
    const cut = binary([{ name: 'input', datatype: 'FP32', shape: [2, 4], bytes: bytesOf(x) }], 4);
    expect(() => parseCalibration(cut.body, cut.headerLength, SPECS)).toThrow(/needs 32 bytes at offset 0 of the binary data, which has only 28 bytes \(truncated\)/);
    x[5] = Number.NaN;
    const nan = binary([{ name: 'input', datatype: 'FP32', shape: [2, 4], bytes: bytesOf(x) }]);
    expect(() => parseCalibration(nan.body, nan.headerLength, SPECS)).toThrow('holds NaN at element 5 (sample 1)');
    expect(() => parseCalibration(nan.body, '99999', SPECS)).toThrow('is not within the body');
    const short = binary([{ name: 'input', datatype: 'FP32', shape: [2, 4], bytes: bytesOf(new Float32Array(7)) }]);
    expect(() => parseCalibration(short.body, short.headerLength, SPECS)).toThrow('28 bytes of binary data, expected 32');
  });

  it('refuses a binary body whose JSON header is over its cap or carries data, before parsing it', () => {
    const x = Float32Array.from({ length: 8 }, () => 0.5);
    // The numbers as JSON `data` in the header, padded past the cap: the binary body limit must not become a JSON limit.
    const values = Array.from({ length: MAX_CALIBRATION_BINARY_HEADER_BYTES / 4 }, () => 0.5);
    const big = Buffer.from(JSON.stringify({ inputs: [input([values.length / 4, 4], values)] }));
    expect(big.byteLength).toBeGreaterThan(MAX_CALIBRATION_BINARY_HEADER_BYTES);
    expect(() => parseCalibration(big, String(big.byteLength), SPECS)).toThrow(
      `Inference-Header-Content-Length ${big.byteLength} is over the ${MAX_CALIBRATION_BINARY_HEADER_BYTES}-byte limit of a binary calibration body's JSON header`,
    );
    const small = Buffer.from(JSON.stringify({ inputs: [input([2, 4], Array.from(x))] }));
    expect(() => parseCalibration(small, String(small.byteLength), SPECS)).toThrow(`tensor "input" has JSON data in a binary calibration body's header`);
    // The same tensor with its bytes after the header is read.
    const ok = binary([{ name: 'input', datatype: 'FP32', shape: [2, 4], bytes: bytesOf(x) }]);
    expect(parseCalibration(ok.body, ok.headerLength, SPECS).samples).toBe(2);
  });

  it('refuses a model input with a fixed batch above 1: samples are fed at batch 1', () => {
    const fixed: TensorSpec[] = [{ name: 'input', datatype: 'FP32', shape: [4, 4] }];
    expect(() => parseCalibration(json({ inputs: [input([3, 4], Array.from({ length: 12 }, () => 1))] }), undefined, fixed)).toThrow(
      'the model\'s input is FP32 [4,4], a fixed batch of 4; calibration samples are fed at batch 1, so dim 0 must be dynamic or 1',
    );
    const one: TensorSpec[] = [{ name: 'input', datatype: 'FP32', shape: [1, 4] }];
    expect(parseCalibration(json({ inputs: [input([3, 4], Array.from({ length: 12 }, () => 1))] }), undefined, one).samples).toBe(3);
  });
});
