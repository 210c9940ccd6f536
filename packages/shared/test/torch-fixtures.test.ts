import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodeModel, elementCount, readSignature, requireGraph, type ModelProto } from '@edgefleet/shared/onnx';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';

// The fixtures and the script that made them: test/fixtures/onnx/ at the repository root.
const FIXTURES = new URL('../../../test/fixtures/onnx/', import.meta.url);

interface NamedTensor {
  name: string;
  dims: number[];
  data: number[];
}

interface Expected {
  model: string;
  sha256: string;
  opset: number;
  input: NamedTensor;
  output: NamedTensor;
}

const MIN_WEIGHT_BYTES = 256 * 1024;

const CASES = [
  { name: 'torch-cnn', ops: ['Conv', 'Relu', 'MaxPool', 'GlobalAveragePool', 'Gemm'] },
  { name: 'torch-mlp', ops: ['Gemm', 'Relu'] },
  { name: 'torch-encoder', ops: ['MatMul', 'Softmax', 'LayerNormalization', 'Add', 'Gemm'] },
] as const;

function readExpected(name: string): Expected {
  return JSON.parse(readFileSync(new URL(`${name}.expected.json`, FIXTURES), 'utf8')) as Expected;
}

function opTypes(model: ModelProto): Set<string> {
  return new Set(requireGraph(model).node.map((n) => n.opType));
}

function floatWeightBytes(model: ModelProto): number {
  return requireGraph(model).initializer.reduce((sum, t) => sum + elementCount(t) * 4, 0);
}

async function runModel(bytes: Uint8Array, input: NamedTensor): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    // Float32Array.from rounds each decimal to the float32 PyTorch used for the same text.
    const feed = new ort.Tensor('float32', Float32Array.from(input.data), input.dims);
    const out = await session.run({ [input.name]: feed });
    return out[session.outputNames[0]!]!;
  } finally {
    await session.release();
  }
}

describe('PyTorch-exported ONNX fixtures', () => {
  it.each(CASES)('$name decodes, has the ops it stands for, and runs as PyTorch computed', async ({ name, ops }) => {
    const expected = readExpected(name);
    const bytes = readFileSync(new URL(expected.model, FIXTURES));
    // The JSON describes exactly this file: a model regenerated without its JSON fails here.
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(expected.sha256);

    const model = decodeModel(bytes);
    expect(model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version).toBe(BigInt(expected.opset));
    expect(readSignature(model)).toEqual({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, ...expected.input.dims.slice(1)] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 10] }],
    });
    expect([...opTypes(model)]).toEqual(expect.arrayContaining([...ops]));
    expect(floatWeightBytes(model)).toBeGreaterThanOrEqual(MIN_WEIGHT_BYTES);

    const output = await runModel(bytes, expected.input);
    expect(output.type).toBe('float32');
    expect([...output.dims]).toEqual(expected.output.dims);
    const actual = output.data as Float32Array;
    // onnxruntime and PyTorch sum in different orders: these logits (|x| up to ~11) agree within 2e-6.
    expected.output.data.forEach((want, i) => {
      expect(Math.abs(actual[i]! - want), `${name} logit ${i}`).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(want));
    });
  });

  it('covers both Conv forms PyTorch writes: with a bias (BatchNorm folded in) and without', () => {
    const model = decodeModel(readFileSync(new URL('torch-cnn.onnx', FIXTURES)));
    const convInputCounts = requireGraph(model).node.filter((n) => n.opType === 'Conv').map((n) => n.input.length);
    expect(convInputCounts).toContain(2);
    expect(convInputCounts).toContain(3);
  });
});
