import { describe, expect, it } from 'vitest';
import { buildConvNet, buildMlp, decodeModel, encodeModel, readSignature } from '@edgefleet/shared/onnx';

describe('onnx model io', () => {
  it('builds a model whose signature reads back, and re-encodes byte-identical', () => {
    const bytes = buildMlp({ inputSize: 8, hidden: [16], outputSize: 3 });
    const model = decodeModel(bytes);
    expect(readSignature(model)).toEqual({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 8] }],
      outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 3] }],
    });
    expect(Buffer.from(encodeModel(model)).equals(Buffer.from(bytes))).toBe(true);
  });

  it('is deterministic for a seed', () => {
    const a = buildConvNet({ channels: 3, size: 16, filters: [4], classes: 2, seed: 3 });
    const b = buildConvNet({ channels: 3, size: 16, filters: [4], classes: 2, seed: 3 });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it('names why bytes are not a model', () => {
    expect(() => decodeModel(new Uint8Array())).toThrow(/empty/);
    expect(() => decodeModel(Buffer.from('hello, this is not onnx'))).toThrow(/not an ONNX model/);
  });
});
