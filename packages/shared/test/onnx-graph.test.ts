import { create } from '@bufbuild/protobuf';
import { AttributeProto_AttributeType, AttributeProtoSchema, TensorProto_DataLocation, TensorProtoSchema } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import {
  buildMlp,
  castNode,
  constantNodeTensor,
  declaredElementTypes,
  decodeModel,
  ELEMENT_TYPE,
  float16BitsToFloat32,
  float16Tensor,
  float32ToFloat16Bits,
  floatTensor,
  GraphBuilder,
  int64Tensor,
  makeNode,
  nameAllocator,
  putInitializer,
  readFloatTensor,
  removeInitializer,
  requireGraph,
  subgraphReads,
  tensorValues,
} from '@edgefleet/shared/onnx';

const FLOAT = ELEMENT_TYPE.FLOAT;

describe('onnx tensor access', () => {
  it('reads raw_data and the typed fields to the same values', () => {
    const values = Float32Array.from([1.5, -2, 0.25, 3]);
    const raw = floatTensor('w', [2, 2], values);
    const typed = create(TensorProtoSchema, { name: 'w', dims: [2n, 2n], dataType: FLOAT, floatData: [...values] });
    expect(tensorValues(raw)).toEqual(values);
    expect(tensorValues(typed)).toEqual(values);

    const ints = int64Tensor('s', [3], [1, -1, 7]);
    const typedInts = create(TensorProtoSchema, { name: 's', dims: [3n], dataType: ELEMENT_TYPE.INT64, int64Data: [1n, -1n, 7n] });
    expect([...(tensorValues(ints) as BigInt64Array)]).toEqual([1n, -1n, 7n]);
    expect([...(tensorValues(typedInts) as BigInt64Array)]).toEqual([1n, -1n, 7n]);
  });

  it('reads raw_data that sits at an unaligned offset of the decoded file', () => {
    const model = decodeModel(buildMlp({ inputSize: 3, hidden: [5], outputSize: 2, seed: 9 }));
    const weight = requireGraph(model).initializer.find((t) => t.name === 'fc0.weight')!;
    const values = readFloatTensor(weight);
    expect(values).toHaveLength(15);
    expect(values.every((v) => Number.isFinite(v) && Math.abs(v) < 2)).toBe(true);
  });

  it('reads raw_data of a model decoded from a Node Buffer (a file read from disk) as exactly its own bytes', () => {
    const bytes = buildMlp({ inputSize: 3, hidden: [5], outputSize: 2, seed: 9 });
    // readFileSync and request bodies hand over Buffers whose slice() is a view, not a copy.
    const model = decodeModel(Buffer.from(bytes));
    const weight = requireGraph(model).initializer.find((t) => t.name === 'fc0.weight')!;
    const fromBuffer = readFloatTensor(weight);
    expect(fromBuffer).toHaveLength(15);
    expect([...fromBuffer]).toEqual([...readFloatTensor(requireGraph(decodeModel(bytes)).initializer.find((t) => t.name === 'fc0.weight')!)]);
  });

  it('names a tensor whose data does not match its dims, or lives in an external file', () => {
    const short = create(TensorProtoSchema, { name: 'bad', dims: [4n], dataType: FLOAT, floatData: [1, 2] });
    expect(() => tensorValues(short)).toThrow(/"bad" has 2 values in float_data, expected 4/);
    const rawShort = create(TensorProtoSchema, { name: 'raw', dims: [4n], dataType: FLOAT, rawData: new Uint8Array(6) });
    expect(() => tensorValues(rawShort)).toThrow(/"raw" has 6 bytes of raw_data, expected 16/);
    const external = create(TensorProtoSchema, { name: 'ext', dims: [4n], dataType: FLOAT, dataLocation: TensorProto_DataLocation.EXTERNAL });
    expect(() => tensorValues(external)).toThrow(/"ext" keeps its data in an external file/);
  });
});

describe('float16 conversion', () => {
  it('rounds to the nearest half and saturates past the half range', () => {
    const bits = float32ToFloat16Bits(Float32Array.from([1, -2, 0.1, 65504, 1e6, -1e6, 2 ** -24, 2 ** -26, 0, Infinity, 1 + 2 ** -11]));
    expect([...bits]).toEqual([0x3c00, 0xc000, 0x2e66, 0x7bff, 0x7bff, 0xfbff, 0x0001, 0x0000, 0x0000, 0x7c00, 0x3c00]);
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(Float32Array.from([NaN])))[0])).toBe(true);
  });

  it('keeps every value within half precision of the original', () => {
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 4));
    const back = float16BitsToFloat32(float32ToFloat16Bits(values));
    values.forEach((v, i) => expect(Math.abs(back[i]! - v)).toBeLessThanOrEqual(Math.max(Math.abs(v) * 2 ** -11, 2 ** -25)));
  });

  it('builds float16 initializers that read back as float32', () => {
    const t = float16Tensor('h', [2n], Float32Array.from([0.5, -3]));
    expect(t.dataType).toBe(ELEMENT_TYPE.FLOAT16);
    expect(t.rawData.byteLength).toBe(4);
    expect(readFloatTensor(t)).toEqual(Float32Array.from([0.5, -3]));
  });
});

describe('onnx graph access', () => {
  it('reads the tensors Constant nodes produce in each attribute form', () => {
    const tensor = constantNodeTensor(
      makeNode('Constant', [], ['c'], 'c', { value: { tensor: floatTensor('ignored', [2], Float32Array.from([1, 2])) } }),
    );
    expect(tensor?.name).toBe('c');
    expect(readFloatTensor(tensor!)).toEqual(Float32Array.from([1, 2]));
    const scalar = constantNodeTensor(makeNode('Constant', [], ['f'], 'f', { value_float: { float: 0.5 } }));
    expect(readFloatTensor(scalar!)).toEqual(Float32Array.from([0.5]));
    const ints = constantNodeTensor(makeNode('Constant', [], ['i'], 'i', { value_ints: { ints: [3, 4] } }));
    expect([...(tensorValues(ints!) as BigInt64Array)]).toEqual([3n, 4n]);
    expect(constantNodeTensor(makeNode('Relu', ['x'], ['y'], 'relu'))).toBeUndefined();
  });

  it('collects declared element types from inputs, initializers and Constant nodes', () => {
    const g = new GraphBuilder('types');
    const x = g.input('x', 'FP32', [1, 2]);
    const shape = g.initializer(int64Tensor('shape', [2], [2, 1]));
    const y = g.node('Reshape', [x, shape]);
    g.node('Identity', [y], {}, 'out');
    g.output('out', 'FP32', [2, 1]);
    const graph = requireGraph(g.build());
    graph.node.unshift(makeNode('Constant', [], ['k'], 'k', { value_int: { int: 1 } }));
    const types = declaredElementTypes(graph);
    expect(types.get('x')).toBe(FLOAT);
    expect(types.get('shape')).toBe(ELEMENT_TYPE.INT64);
    expect(types.get('k')).toBe(ELEMENT_TYPE.INT64);
    expect(types.get('out')).toBe(FLOAT);
    expect(types.has(y)).toBe(false);
  });

  it('adds, replaces and removes initializers, and hands out unused names', () => {
    const graph = requireGraph(decodeModel(buildMlp({ inputSize: 2, hidden: [], outputSize: 2 })));
    putInitializer(graph, floatTensor('fc0.bias', [2], Float32Array.from([7, 8])));
    expect(graph.initializer.filter((t) => t.name === 'fc0.bias')).toHaveLength(1);
    expect(readFloatTensor(graph.initializer.find((t) => t.name === 'fc0.bias')!)).toEqual(Float32Array.from([7, 8]));
    putInitializer(graph, floatTensor('extra', [1], Float32Array.from([1])));
    expect(graph.initializer.map((t) => t.name)).toContain('extra');
    removeInitializer(graph, 'extra');
    expect(graph.initializer.map((t) => t.name)).not.toContain('extra');

    const fresh = nameAllocator(graph);
    expect(fresh('fc0.weight')).toBe('fc0.weight_1');
    expect(fresh('fc0.weight')).toBe('fc0.weight_2');
    expect(fresh('brand_new')).toBe('brand_new');
    expect(castNode('a', 'b', ELEMENT_TYPE.FLOAT16).attribute[0]?.i).toBe(BigInt(ELEMENT_TYPE.FLOAT16));
  });

  it('lists the outer tensors a subgraph reads', () => {
    const body = new GraphBuilder('body');
    body.node('Add', ['outer', 'inner'], {}, 'sum');
    const ifNode = makeNode('If', ['cond'], ['y'], 'if');
    const branch = body.build().graph!;
    ifNode.attribute.push(create(AttributeProtoSchema, { name: 'then_branch', type: AttributeProto_AttributeType.GRAPH, g: branch }));
    expect(subgraphReads(ifNode)).toEqual(['outer', 'inner']);
  });
});
