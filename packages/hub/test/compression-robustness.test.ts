import { isEdgefleetError, seededRandom } from '@edgefleet/shared';
import { decodeModel, ELEMENT_TYPE, encodeModel, float16BitsToFloat32, float32ToFloat16Bits, floatTensor, GraphBuilder, requireGraph, type ModelProto } from '@edgefleet/shared/onnx';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { calibrateRanges } from '../src/compression/calibration.js';
import { collectActivations, type RunModel } from '../src/compression/collect-activations.js';
import { convertToFloat16 } from '../src/compression/fp16.js';
import { storeParametersAsFloat16, survivesFloat16 } from '../src/compression/graph-edit.js';
import { quantizeInt8Dynamic } from '../src/compression/int8-dynamic.js';
import { convertToInt8Static, int8StaticCalibrationTensors } from '../src/compression/int8-static.js';
import { roundScalesUpToFloat16 } from '../src/compression/quant-math.js';

/**
 * Every transform on the shapes PyTorch and TensorFlow converters write (acceptance 3): each output
 * model is loaded and run in onnxruntime and compared with fp32 numerically; malformed input gives
 * an error naming the problem, never a crash or an invalid model.
 */

const INPUT: readonly number[] = [4, 3, 8, 8];
const values = (rand: () => number, n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
/** He-uniform limit: keeps the signal's spread through the layers, as trained weights do. */
const he = (fanIn: number) => Math.sqrt(6 / fanIn);

/**
 * Conv with bias → Relu → Conv without bias → Clip(0, 6) → Flatten → Gemm transB=1 (+C) → Relu →
 * MatMul + Add with a weight read by two MatMuls → Relu → com.microsoft Gelu (a custom-domain op
 * the transforms do not know) → MatMul (shared weight) → Gemm transB=0 → y.
 */
function exporterShapes(opset: number): ModelProto {
  const rand = seededRandom(opset);
  const g = new GraphBuilder('exporter-shapes');
  const x = g.input('x', 'FP32', [-1, 3, 8, 8]);
  const c1 = g.node('Conv', [x, g.initializer(floatTensor('conv1.w', [8, 3, 3, 3], values(rand, 216, he(27)))), g.initializer(floatTensor('conv1.b', [8], values(rand, 8, 0.1)))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  const c2 = g.node('Conv', [g.node('Relu', [c1]), g.initializer(floatTensor('conv2.w', [8, 8, 3, 3], values(rand, 576, he(72))))], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  const clipped = g.node('Clip', [c2, g.initializer(floatTensor('clip.min', [], Float32Array.of(0))), g.initializer(floatTensor('clip.max', [], Float32Array.of(6)))]);
  const flat = g.node('Flatten', [clipped]);
  const fc = g.node('Relu', [g.node('Gemm', [flat, g.initializer(floatTensor('fc.w', [32, 128], values(rand, 4096, he(128)))), g.initializer(floatTensor('fc.b', [32], values(rand, 32, 0.1)))], { transB: 1 })]);
  const shared = g.initializer(floatTensor('shared.w', [32, 32], values(rand, 1024, he(32))));
  const m1 = g.node('Relu', [g.node('Add', [g.node('MatMul', [fc, shared]), g.initializer(floatTensor('mm.b', [32], values(rand, 32, 0.1)))])]);
  const custom = g.node('Gelu', [m1]);
  const m2 = g.node('MatMul', [custom, shared]);
  g.node('Gemm', [m2, g.initializer(floatTensor('head.w', [32, 10], values(rand, 320, he(32))))], {}, 'y');
  g.output('y', 'FP32', [-1, 10]);
  const model = g.build(opset);
  requireGraph(model).node.find((n) => n.opType === 'Gelu')!.domain = 'com.microsoft';
  model.opsetImport.push({ ...model.opsetImport[0]!, domain: 'com.microsoft', version: 1n });
  if (opset >= 21) model.irVersion = 10n;
  return model;
}

const runModel: RunModel = async (model, feeds, outputs) => {
  const session = await ort.InferenceSession.create(model, { logSeverityLevel: 3 });
  try {
    const out = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.data, [...v.dims])])), [...outputs]);
    return Object.fromEntries(outputs.map((name) => [name, out[name]!.data as Float32Array]));
  } finally {
    await session.release();
  }
};

const sample = (seed: number) => ({ x: { data: values(seededRandom(seed), INPUT.reduce((a, b) => a * b, 1), 1), dims: INPUT } });
const run = async (model: ModelProto, seed: number) => (await runModel(encodeModel(model), sample(seed), ['y'])).y!;

/** Relative RMS error ‖fp32 − variant‖ / ‖fp32‖ on a held-out batch. */
async function relativeError(fp32: ModelProto, variant: ModelProto): Promise<number> {
  const [expected, actual] = [await run(fp32, 99), await run(variant, 99)];
  return Math.sqrt(expected.reduce((m, v, i) => m + (v - actual[i]!) ** 2, 0) / expected.reduce((m, v) => m + v * v, 0));
}

/** 128 calibration samples: with 16, held-out activations overran the calibrated ranges and saturated. */
const CALIBRATION = Array.from({ length: 32 }, (_, i) => sample(1000 + i));

async function int8Static(model: ModelProto): Promise<ReturnType<typeof convertToInt8Static>> {
  const tensors = int8StaticCalibrationTensors(model);
  const activations = await collectActivations(model, tensors, CALIBRATION, runModel);
  return convertToInt8Static(model, calibrateRanges(activations, { kind: 'minmax' }));
}

const opTypes = (model: ModelProto) => requireGraph(model).node.map((n) => `${n.domain ? `${n.domain}.` : ''}${n.opType}`);

describe('transforms on exporter shapes', () => {
  for (const opset of [13, 21]) {
    it(`fp16, int8-dynamic and int8-static run in onnxruntime close to fp32 (opset ${opset})`, async () => {
      const fp32 = exporterShapes(opset);
      const before = encodeModel(fp32);

      const fp16 = convertToFloat16(fp32);
      expect(await relativeError(fp32, fp16.model)).toBeLessThan(0.01);

      // conv: ConvInteger is not the default (slower than float Conv here) but must stay correct.
      const dynamic = quantizeInt8Dynamic(fp32, { conv: true });
      // Both Convs, the Gemm and both reads of the shared weight; the output Gemm stays float.
      expect(dynamic.quantizedNodes).toHaveLength(5);
      expect(dynamic.skippedNodes.map((s) => s.reason)).toEqual(['output layer, kept float (quantizeOutputLayer is off)']);
      expect(opTypes(dynamic.model)).toEqual(expect.arrayContaining(['ConvInteger', 'MatMulInteger', 'com.microsoft.Gelu']));
      expect(requireGraph(dynamic.model).initializer.filter((t) => t.name.startsWith('shared.w'))).toHaveLength(3); // one int8 copy + scale + zero point
      expect(await relativeError(fp32, dynamic.model)).toBeLessThan(0.05);

      const stat = await int8Static(fp32);
      expect(stat.quantizedNodes).toHaveLength(5);
      expect(stat.absorbedActivations).toBe(3); // two Relu and the Clip(0, 6)
      expect(opTypes(stat.model)).not.toContain('Clip');
      expect(opTypes(stat.model)).toContain('com.microsoft.Gelu');
      expect(await relativeError(fp32, stat.model)).toBeLessThan(0.05);

      // int8 (S8S8) activations: the same levels shifted by 128, as close.
      const tensors = int8StaticCalibrationTensors(fp32);
      const ranges = calibrateRanges(await collectActivations(fp32, tensors, CALIBRATION, runModel), { kind: 'minmax' });
      const s8 = convertToInt8Static(fp32, ranges, { activations: 'int8' });
      expect(requireGraph(s8.model).initializer.filter((t) => t.name.endsWith('_zero_point') && t.dims.length === 0).every((t) => t.dataType === 3)).toBe(true);
      expect(await relativeError(fp32, s8.model)).toBeLessThan(0.05);

      expect(encodeModel(fp32)).toEqual(before); // the source is never mutated
    });
  }
});

describe('malformed models', () => {
  const transforms = {
    fp16: (m: ModelProto) => convertToFloat16(m),
    'int8-dynamic': (m: ModelProto) => quantizeInt8Dynamic(m),
    'int8-static': (m: ModelProto) => convertToInt8Static(m, new Map()),
    'int8-static calibration': (m: ModelProto) => int8StaticCalibrationTensors(m),
  };

  it('bytes that are not a model give an error saying so', () => {
    expect(() => decodeModel(new Uint8Array([0x0a, 0xff, 0xff, 0xff]))).toThrow(/not an ONNX model/);
    expect(() => decodeModel(new Uint8Array())).toThrow(/empty/);
  });

  it('a node reading a missing tensor gives INVALID_MODEL naming the node and the tensor, from every transform', () => {
    const g = new GraphBuilder('dangling');
    const x = g.input('x', 'FP32', [1, 4]);
    const h = g.node('MatMul', [x, g.initializer(floatTensor('w', [4, 4], Float32Array.from({ length: 16 }, (_, i) => i / 16)))]);
    g.node('Add', [h, 'ghost'], {}, 'y');
    g.output('y', 'FP32', [1, 4]);
    const model = g.build(13);
    for (const [name, transform] of Object.entries(transforms)) {
      let error: unknown;
      try {
        transform(model);
      } catch (e) {
        error = e;
      }
      expect({ name, code: isEdgefleetError(error) && error.code }).toEqual({ name, code: 'INVALID_MODEL' });
      expect((error as Error).message).toMatch(/"Add_1" reads "ghost"/);
    }
  });

  it('a model without a graph gives INVALID_MODEL from every transform', () => {
    const empty = new GraphBuilder('empty').build(13);
    for (const transform of Object.values(transforms)) expect(() => transform(empty)).toThrow(/no graph nodes/);
  });
});

describe('float16 parameters of the int8 profiles', () => {
  it('rounds weight scales up to float16 values, so max |w| / scale never exceeds 127', () => {
    const scales = roundScalesUpToFloat16(Float32Array.of(0.0123456, 1 / 3, 7e-6, 1, 70000));
    const halves = float16BitsToFloat32(float32ToFloat16Bits(scales));
    expect([...scales.subarray(0, 4)]).toEqual([...halves.subarray(0, 4)]);
    [0.0123456, 1 / 3, 7e-6, 1].forEach((s, i) => expect(scales[i]!).toBeGreaterThanOrEqual(Math.fround(s)));
    expect(scales[4]).toBe(70000); // past float16's range: left float32, and the pass keeps it so
  });

  it('stores LayerNorm/bias parameters as float16 + Cast under their own names, keeps what float16 would spoil, and onnxruntime runs it', async () => {
    const rand = seededRandom(5);
    const g = new GraphBuilder('parameters');
    const x = g.input('x', 'FP32', [-1, 64]);
    const h = g.node('Add', [g.node('MatMul', [x, g.initializer(floatTensor('w', [64, 64], values(rand, 4096, he(64))))]), g.initializer(floatTensor('bias.b', [64], values(rand, 64, 0.1)))]);
    const big = Float32Array.from(values(rand, 64, 1), (v, i) => (i === 0 ? 1e5 : v));
    const n = g.node('LayerNormalization', [h, g.initializer(floatTensor('norm.weight', [64], values(rand, 64, 1))), g.initializer(floatTensor('norm.bias', [64], values(rand, 64, 0.1)))], { axis: -1 });
    g.node('Add', [n, g.initializer(floatTensor('out.b', [64], big))], {}, 'y');
    g.output('y', 'FP32', [-1, 64]);
    const model = g.build(17);
    const copy = decodeModel(encodeModel(model));
    const graph = requireGraph(copy);
    expect(storeParametersAsFloat16(graph).sort()).toEqual(['bias.b', 'norm.bias', 'norm.weight']);
    const types = Object.fromEntries(graph.initializer.map((t) => [t.name, t.dataType]));
    expect(types['out.b']).toBe(ELEMENT_TYPE.FLOAT); // 1e5 is past float16's range
    expect(types['w']).toBe(ELEMENT_TYPE.FLOAT); // a MatMul weight is not a parameter this pass touches
    expect(graph.node.filter((n) => n.opType === 'Cast').map((n) => n.output[0]).sort()).toEqual(['bias.b', 'norm.bias', 'norm.weight']);
    expect(survivesFloat16(Float32Array.of(1, 0.5, NaN))).toBe(false);
    const feeds = { x: { data: values(seededRandom(9), 4 * 64, 1), dims: [4, 64] } };
    const [expected, actual] = [(await runModel(encodeModel(model), feeds, ['y'])).y!, (await runModel(encodeModel(copy), feeds, ['y'])).y!];
    expect(Math.max(...expected.map((v, i) => Math.abs(v - actual[i]!)))).toBeLessThan(1e-2);
  });
});
