import { isEdgefleetError, seededRandom } from '@edgefleet/shared';
import {
  buildConvNet,
  buildMlp,
  decodeModel,
  ELEMENT_TYPE,
  encodeModel,
  floatTensor,
  GraphBuilder,
  int64Tensor,
  makeNode,
  requireGraph,
  type AttributeValue,
  type ModelProto,
} from '@edgefleet/shared/onnx';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { convertToFloat16, FLOAT16_OPS, type Fp16Options } from '../src/compression/fp16.js';
import { argmaxRows } from './compression-support.js';

type Shape = readonly number[];

function seededInput(shape: Shape, seed: number): Float32Array {
  const rand = seededRandom(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rand() * 2 - 1);
}

async function run(bytes: Uint8Array, feeds: Record<string, { data: Float32Array; shape: Shape }>): Promise<Float32Array[]> {
  // Warnings only: onnxruntime notes the Casts it adds around ops without a float16 CPU kernel.
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  try {
    const tensors = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.data, [...v.shape])]));
    const out = await session.run(tensors);
    return session.outputNames.map((name) => {
      const t = out[name]!;
      expect(t.type).toBe('float32');
      return t.data as Float32Array;
    });
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

/** Converts, runs both models on the same seeded input and returns the largest output difference. */
async function compare(bytes: Uint8Array, input: string, shape: Shape, options?: Fp16Options) {
  const result = convertToFloat16(decodeModel(bytes), options);
  const half = encodeModel(result.model);
  const data = seededInput(shape, 42);
  const [expected] = await run(bytes, { [input]: { data, shape } });
  const [actual] = await run(half, { [input]: { data, shape } });
  return { result, half, expected: expected!, actual: actual!, diff: maxAbsDiff(expected!, actual!) };
}

const nodeTypes = (model: ModelProto) => requireGraph(model).node.map((n) => n.opType);

describe('fp16 transform', () => {
  it('halves an MLP with 400 KB of weights and keeps its outputs within 2e-3 of fp32', async () => {
    const bytes = buildMlp({ inputSize: 256, hidden: [256, 128], outputSize: 10, seed: 5 });
    expect(bytes.byteLength).toBeGreaterThan(256 * 1024);
    const { result, half, expected, actual, diff } = await compare(bytes, 'input', [16, 256]);
    expect(half.byteLength / bytes.byteLength).toBeLessThanOrEqual(0.55);
    expect(diff).toBeLessThan(2e-3);
    expect(argmaxRows(actual, 10)).toEqual(argmaxRows(expected, 10));
    expect(result.float16Nodes).toHaveLength(6);
    expect(result.float16Initializers).toBe(6);
    // Compute is float16 between one Cast in and one Cast out; the signature is still float32.
    expect(nodeTypes(result.model).filter((t) => t === 'Cast')).toHaveLength(2);
    expect(requireGraph(result.model).initializer.every((t) => t.dataType === ELEMENT_TYPE.FLOAT16)).toBe(true);
  });

  it('converts models importing opsets 13 to 21', async () => {
    for (const opset of [13, 21]) {
      const model = decodeModel(buildConvNet({ channels: 1, size: 8, filters: [4], classes: 3, seed: opset }));
      model.opsetImport[0]!.version = BigInt(opset);
      model.irVersion = opset >= 21 ? 10n : 7n;
      const { diff, result } = await compare(encodeModel(model), 'image', [1, 1, 8, 8]);
      expect({ opset, ok: diff < 2e-3, float32Ops: result.float32Ops }).toEqual({ opset, ok: true, float32Ops: [] });
    }
  });

  it('keeps a conv net within 2e-3 of fp32 and its top-1 unchanged', async () => {
    const bytes = buildConvNet({ channels: 3, size: 32, filters: [16, 32, 64], classes: 10, seed: 6 });
    const { result, half, expected, actual, diff } = await compare(bytes, 'image', [4, 3, 32, 32]);
    expect(diff).toBeLessThan(2e-3);
    expect(argmaxRows(actual, 10)).toEqual(argmaxRows(expected, 10));
    expect(half.byteLength / bytes.byteLength).toBeLessThanOrEqual(0.55);
    expect(result.float32Ops).toEqual([]);
  });

  it("with target 'cpu' stores weights as float16 and adds no Casts just to compute in float16", async () => {
    const bytes = buildConvNet({ channels: 3, size: 16, filters: [16, 32, 64], classes: 4, seed: 7 });
    const { result, half, diff } = await compare(bytes, 'image', [2, 3, 16, 16], { target: 'cpu' });
    expect(diff).toBeLessThan(2e-3);
    expect(half.byteLength / bytes.byteLength).toBeLessThanOrEqual(0.55);
    expect(result.float16Initializers).toBe(8);
    expect(result.float16Nodes).toEqual([]);
    // Only the folded weight Casts: no Cast of an activation.
    const casts = requireGraph(result.model).node.filter((n) => n.opType === 'Cast');
    expect(casts.map((n) => n.input[0])).toEqual(requireGraph(result.model).initializer.map((t) => t.name));

    // A Concat (float16 CPU kernel) of two halved weights does run in float16 there.
    const g = new GraphBuilder('concat');
    const x = g.input('x', 'FP32', [-1, 4]);
    const wa = g.initializer(floatTensor('wa', [4, 2], seededInput([4, 2], 4)));
    const wb = g.initializer(floatTensor('wb', [4, 2], seededInput([4, 2], 5)));
    g.node('MatMul', [x, g.node('Concat', [wa, wb], { axis: 1 })], {}, 'y');
    g.output('y', 'FP32', [-1, 4]);
    const concat = await compare(encodeModel(g.build()), 'x', [3, 4], { target: 'cpu' });
    expect(concat.diff).toBeLessThan(2e-3);
    expect(concat.result.float16Nodes).toEqual(['Concat_0']);
    expect(concat.result.float32Ops).toEqual(['MatMul']);
  });

  it('keeps an op outside the allow-list in float32 behind Casts, and the model still runs', async () => {
    const g = new GraphBuilder('elu');
    const x = g.input('x', 'FP32', [-1, 8]);
    const w = g.initializer(floatTensor('w', [8, 8], seededInput([8, 8], 1)));
    const h = g.node('MatMul', [x, w]);
    const e = g.node('Elu', [h], { alpha: { float: 0.5 } }, 'elu_out');
    g.node('MatMul', [e, w], {}, 'y');
    g.output('y', 'FP32', [-1, 8]);
    const { result, diff } = await compare(encodeModel(g.build()), 'x', [3, 8]);
    expect(diff).toBeLessThan(5e-3);
    expect(result.float32Ops).toEqual(['Elu']);
    const elu = requireGraph(result.model).node.find((n) => n.opType === 'Elu')!;
    // Elu reads and writes the original float32 names; the MatMuls around it use float16 twins.
    expect(elu.input).toEqual([h]);
    expect(elu.output).toEqual(['elu_out']);
    expect(result.float16Nodes).toHaveLength(2);
  });

  it('handles shared initializers, float_data weights, Constant nodes and value_info', async () => {
    const g = new GraphBuilder('mixed');
    const x = g.input('x', 'FP32', [-1, 4]);
    const w = g.initializer(floatTensor('w', [4, 4], seededInput([4, 4], 2)));
    const typed = floatTensor('typed', [4], seededInput([4], 3));
    typed.floatData = [...new Float32Array(typed.rawData.slice().buffer)];
    // raw_data has explicit presence (proto2): removing the own property unsets it, as exporters that write float_data leave it.
    Reflect.deleteProperty(typed, 'rawData');
    g.initializer(typed);
    const a = g.node('MatMul', [x, w]);
    const b = g.node('Add', [a, 'typed']);
    const shared = g.node('Sin', [w]); // a float32 reader of the shared weight
    const c = g.node('MatMul', [b, shared]);
    const model = g.build();
    const graph = requireGraph(model);
    graph.node.splice(0, 0, makeNode('Constant', [], ['k'], 'k', { value: { tensor: floatTensor('k', [1], Float32Array.from([0.5])) } }));
    graph.node.push(makeNode('Mul', [c, 'k'], ['y'], 'scale'));
    graph.output.push(...decodeModel(buildMlp({ inputSize: 4, hidden: [], outputSize: 4 })).graph!.output.map((o) => ({ ...o, name: 'y' })));
    const valueInfoSource = decodeModel(buildMlp({ inputSize: 4, hidden: [], outputSize: 4 })).graph!.output[0]!;
    graph.valueInfo.push({ ...valueInfoSource, name: a }, { ...valueInfoSource, name: shared });
    const { result, diff } = await compare(encodeModel(model), 'x', [5, 4]);
    expect(diff).toBeLessThan(5e-3);
    const out = requireGraph(result.model);
    expect(out.initializer.map((t) => [t.name, t.dataType])).toEqual([
      ['w_fp16', ELEMENT_TYPE.FLOAT16],
      ['typed_fp16', ELEMENT_TYPE.FLOAT16],
    ]);
    // The Sin still reads float32 `w`, now made by one Cast from the single float16 copy.
    expect(out.node.find((n) => n.opType === 'Cast' && n.output[0] === 'w')?.input).toEqual(['w_fp16']);
    expect(out.valueInfo.map((v) => v.name)).toEqual([shared]);
  });

  it('converts every op on the allow-list, and each runs close to fp32', async () => {
    const cases: Record<string, { inputs: number; attrs?: Record<string, AttributeValue>; extra?: 'shape' | 'ln' }> = {
      Gemm: { inputs: 2, attrs: { transB: 1 } },
      MatMul: { inputs: 2 },
      Add: { inputs: 2 },
      Sub: { inputs: 2 },
      Mul: { inputs: 2 },
      Div: { inputs: 1 },
      Relu: { inputs: 1 },
      LeakyRelu: { inputs: 1, attrs: { alpha: { float: 0.1 } } },
      Sigmoid: { inputs: 1 },
      Tanh: { inputs: 1 },
      Softmax: { inputs: 1, attrs: { axis: -1 } },
      Flatten: { inputs: 1, attrs: { axis: 1 } },
      Reshape: { inputs: 1, extra: 'shape' },
      Transpose: { inputs: 1, attrs: { perm: [1, 0] } },
      Concat: { inputs: 2, attrs: { axis: 1 } },
      Clip: { inputs: 1 },
      LayerNormalization: { inputs: 1, extra: 'ln' },
    };
    const image = { Conv: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, GlobalAveragePool: {}, AveragePool: { kernel_shape: [2, 2] }, MaxPool: { kernel_shape: [2, 2] } };
    expect(new Set([...Object.keys(cases), ...Object.keys(image)])).toEqual(new Set(Object.keys(FLOAT16_OPS)));

    for (const [op, c] of Object.entries(cases)) {
      const g = new GraphBuilder(op);
      const x = g.input('x', 'FP32', [4, 4]);
      const inputs = [x];
      if (c.inputs === 2) inputs.push(g.initializer(floatTensor('w', [4, 4], seededInput([4, 4], 8))));
      if (op === 'Div') inputs.push(g.initializer(floatTensor('d', [4], Float32Array.from([2, 4, 0.5, 8]))));
      if (c.extra === 'shape') inputs.push(g.initializer(int64Tensor('shape', [2], [2, 8])));
      if (c.extra === 'ln') inputs.push(g.initializer(floatTensor('scale', [4], Float32Array.from([1, 2, 1, 0.5]))), g.initializer(floatTensor('bias', [4], new Float32Array(4).fill(0.1))));
      g.node(op, inputs, c.attrs, 'y');
      g.output('y', 'FP32', [-1, -1]);
      const { result, diff } = await compare(encodeModel(g.build()), 'x', [4, 4]);
      expect({ op, converted: result.float16Nodes.length, ok: diff < 5e-3 }).toEqual({ op, converted: 1, ok: true });
    }
    for (const [op, attrs] of Object.entries(image)) {
      const g = new GraphBuilder(op);
      const x = g.input('x', 'FP32', [1, 2, 4, 4]);
      const inputs = op === 'Conv' ? [x, g.initializer(floatTensor('w', [3, 2, 3, 3], seededInput([3, 2, 3, 3], 9)))] : [x];
      g.node(op, inputs, attrs as Record<string, AttributeValue>, 'y');
      g.output('y', 'FP32', [-1, -1, -1, -1]);
      const { result, diff } = await compare(encodeModel(g.build()), 'x', [1, 2, 4, 4]);
      expect({ op, converted: result.float16Nodes.length, ok: diff < 5e-3 }).toEqual({ op, converted: 1, ok: true });
    }
  });

  it('rejects a malformed model with an error naming the problem, and leaves the input model untouched', () => {
    const g = new GraphBuilder('broken');
    g.input('x', 'FP32', [1, 2]);
    g.node('Relu', ['missing'], {}, 'y');
    g.output('y', 'FP32', [1, 2]);
    const broken = g.build();
    let error: unknown;
    try {
      convertToFloat16(broken);
    } catch (err) {
      error = err;
    }
    expect(isEdgefleetError(error) && error.code).toBe('INVALID_MODEL');
    expect((error as Error).message).toMatch(/node "Relu_0" reads "missing", which no graph input, initializer or earlier node defines/);
    expect(() => convertToFloat16({ ...broken, graph: undefined } as ModelProto)).toThrow(/no graph nodes/);

    const source = decodeModel(buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 }));
    const before = encodeModel(source);
    convertToFloat16(source);
    expect(Buffer.from(encodeModel(source)).equals(Buffer.from(before))).toBe(true);
  });
});
