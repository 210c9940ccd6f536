import { EdgefleetError } from '@edgefleet/shared';
import {
  cloneModel,
  floatTensor,
  makeNode,
  nameAllocator,
  readFloatTensor,
  requireGraph,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from '@edgefleet/shared/onnx';
import { checkTopology, isDefaultDomain, nodeLabel as label } from './graph-check.js';
import { activationParams, type ActivationRange } from './calibration.js';
import { foldBatchNorms } from './batchnorm-fold.js';
import { plan, QUANTIZABLE, MIN_OPSET, type Candidate } from './int8-static-plan.js';
import { constantFloat, dropStaleValueInfo, dropUnreadInitializers, int32Tensor, int8Tensor, uint8Tensor, storeParametersAsFloat16, FLOAT16_PARAMETER_READERS } from './graph-edit.js';
import { quantizeAlongAxis, roundHalfToEven } from './quant-math.js';
import { storeWeightsAsInt8, sumWeightBytes } from './weight-quant.js';

/**
 * int8-static: QDQ (QuantizeLinear/DequantizeLinear pairs onnxruntime fuses into QLinearConv,
 * QGemm, QLinearMatMul) with symmetric per-channel int8 weights and activations whose ranges come
 * from calibration. The last MatMul/Gemm before the model output computes in float: requantizing
 * logits costs accuracy and saves almost no time. Its weight is stored as int8 all the same.
 */

export interface Int8StaticOptions {
  /**
   * Element type of the quantized activations. 'uint8' (U8S8, the default) because that is what
   * runs fast on x86 here: onnxruntime's x86 kernels fuse uint8 activation pairs into
   * QLinearConv/QGemm (VNNI u8·s8), while int8 activations run its S8S8 path, measured ~7x slower
   * than fp32 with qdqisint8allowed (REFERENCES.md "Compression"). 'int8' (S8S8) is onnxruntime's
   * general recommendation and the choice for ARM targets with int8 dot-product kernels.
   */
  readonly activations?: 'uint8' | 'int8';
  /** Names of Conv/MatMul/Gemm nodes to leave in float32. */
  readonly keepFloat?: readonly string[];
  /**
   * Quantize a model input that a MatMul/Gemm reads directly. Off by default: that layer then keeps
   * int8-stored weights (Cast and Mul to float, which onnxruntime constant-folds at load) and
   * computes in float, its output quantized as usual. Measured on the PyTorch MLP fixture: 8-bit
   * rounding of the raw input alone flips 1–1.6 % of top-1 classes whatever the range, and one
   * dense layer at batch 1 is cheap. A Conv reading the model input is always quantized: it is the
   * highest-resolution, costliest layer (float, the 3x128x128 conv net went from ~0.5x to 0.71x
   * fp32 latency) and its window sums average the rounding out (torch CNN: +0.25 pt agreement only).
   */
  readonly quantizeModelInputs?: boolean;
}

export interface Int8StaticResult {
  readonly model: ModelProto;
  /** Names (or op types) of nodes now computing in int8. */
  readonly quantizedNodes: string[];
  /** Conv/MatMul/Gemm nodes left float, with the reason. */
  readonly floatNodes: { node: string; reason: string }[];
  readonly foldedBatchNorms: number;
  readonly absorbedActivations: number;
  /** Share of the Conv/MatMul/Gemm weight bytes (fp32) now stored as int8 (weightOnlyNodes' included). */
  readonly quantizedWeightShare: number;
  /** Quantized nodes reading a model input: int8-stored weights, float compute (see quantizeModelInputs). */
  readonly floatComputeNodes: string[];
  /**
   * floatNodes whose constant weight is nevertheless stored as int8, read through Cast + Mul that
   * onnxruntime folds at session creation: float compute with int8-rounded weights, float output.
   */
  readonly weightOnlyNodes: string[];
  /** The logits layer: float compute, its weight stored as float16 (+ Cast folded at load). */
  readonly float16WeightNodes: string[];
}

function checkOpset(model: ModelProto): void {
  const opset = model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (!opset || Number(opset.version) < MIN_OPSET) {
    throw new EdgefleetError('INVALID_MODEL', `cannot quantize to int8-static: the model uses ONNX opset ${opset?.version ?? 'none'}, per-channel QDQ needs ${MIN_OPSET} or later`);
  }
}

/**
 * The tensors to calibrate for this model: inputs and (Relu-absorbed) outputs of every
 * Conv/MatMul/Gemm the transform will quantize. All exist in the source model, so the
 * calibration run uses it as it is.
 */
export function int8StaticCalibrationTensors(source: ModelProto, options: Int8StaticOptions = {}): string[] {
  const model = cloneModel(source);
  checkOpset(model);
  const graph = requireGraph(model);
  checkTopology(graph, 'input', 'quantize to int8');
  foldBatchNorms(graph, nameAllocator(graph));
  const names = new Set<string>();
  for (const c of plan(graph, new Set(options.keepFloat)).candidates) names.add(c.activation).add(c.output);
  return [...names];
}

/**
 * int8-static variant of a float32 model. `ranges` holds a calibrated range for the tensors
 * int8StaticCalibrationTensors names; a node whose ranges are missing stays float (reported).
 * Input untouched; the output is checked to be topologically sound before it is returned.
 */
export function convertToInt8Static(source: ModelProto, ranges: ReadonlyMap<string, ActivationRange>, options: Int8StaticOptions = {}): Int8StaticResult {
  const model = cloneModel(source);
  checkOpset(model);
  const graph = requireGraph(model);
  checkTopology(graph, 'input', 'quantize to int8');
  const fresh = nameAllocator(graph);
  const foldedBatchNorms = foldBatchNorms(graph, fresh);
  const { candidates, floatNodes, logits } = plan(graph, new Set(options.keepFloat));
  const activationType = options.activations ?? 'uint8';

  const weightSizes = new Map<string, number>();
  for (const node of graph.node) {
    const w = QUANTIZABLE.has(node.opType) && isDefaultDomain(node) ? constantFloat(graph, node.input[1]) : undefined;
    if (w) weightSizes.set(w.name, 4 * w.dims.reduce((n, d) => n * Number(d), 1));
  }

  const chosen = new Map<NodeProto, Candidate>();
  for (const c of candidates) {
    const missing = [c.activation, c.output].filter((t) => !ranges.has(t));
    if (missing.length > 0) floatNodes.push({ node: label(c.node), reason: `no calibrated range for ${missing.join(', ')}` });
    else chosen.set(c.node, c);
  }

  const newInitializers: TensorProto[] = [];
  // Each Q/DQ pair's own tensors and nodes are named q<n>_…, not after the tensor they quantize (the
  // QuantizeLinear's input names it): exporter names run to 40–60 characters, and repeated in five
  // names and eight references per pair they were 4.4 KB of the PyTorch CNN's 0.28x (1.1 % of fp32).
  let pairs = 0;
  /** The scale initializer of each inserted DequantizeLinear's output. */
  const scaleOf = new Map<string, string>();
  const quantize = (tensor: string, output: string, range: ActivationRange): NodeProto[] => {
    const { scale, zeroPoint } = activationParams(range, activationType);
    const key = `q${pairs++}`;
    const scaleName = fresh(`${key}_scale`);
    const zpName = fresh(`${key}_zero_point`);
    const quantized = fresh(`${key}_quantized`);
    const zp = activationType === 'uint8' ? uint8Tensor(zpName, [], Uint8Array.of(zeroPoint)) : int8Tensor(zpName, [], Int8Array.of(zeroPoint));
    newInitializers.push(floatTensor(scaleName, [], Float32Array.of(scale)), zp);
    scaleOf.set(output, scaleName);
    // One QuantizeLinear feeding exactly one DequantizeLinear: the shape onnxruntime fuses.
    return [
      makeNode('QuantizeLinear', [tensor, scaleName, zpName], [quantized], fresh(`${key}_QuantizeLinear`)),
      makeNode('DequantizeLinear', [quantized, scaleName, zpName], [output], fresh(`${key}_DequantizeLinear`)),
    ];
  };

  /** Tensors that are already the output of an inserted DequantizeLinear (quantized node outputs). */
  const dequantized = new Set<string>();
  for (const c of chosen.values()) dequantized.add(c.output);
  const absorbed = new Set<NodeProto>([...chosen.values()].flatMap((c) => (c.absorbed ? [c.absorbed] : [])));

  const quantizedWeights = new Set<string>();
  const modelInputs = new Set(graph.input.map((i) => i.name).filter((n) => !graph.initializer.some((t) => t.name === n)));
  const floatCompute: NodeProto[] = [];
  const nodes: NodeProto[] = [];
  for (const node of graph.node) {
    if (absorbed.has(node)) continue; // its clamp now lives in the output range's saturation
    const c = chosen.get(node);
    if (!c) {
      nodes.push(node);
      continue;
    }
    if (!options.quantizeModelInputs && modelInputs.has(c.activation) && node.opType !== 'Conv') {
      // Float compute; storeWeightsAsInt8 below stores its weight as int8 like every float node's.
      const raw = fresh(`q${pairs}_float`);
      node.output = [raw];
      nodes.push(node, ...quantize(raw, c.output, ranges.get(c.output)!));
      floatCompute.push(node);
      continue;
    }
    const xRange = ranges.get(c.activation)!;
    let activation = c.activation;
    if (!dequantized.has(c.activation)) {
      activation = fresh(`${c.activation}_dequantized`);
      nodes.push(...quantize(c.activation, activation, xRange));
    }

    const dims = c.weight.dims.map(Number);
    // float16-representable scales (rounded up), so storing them in 16 bits below loses nothing.
    const { q, scales } = quantizeAlongAxis(readFloatTensor(c.weight), dims, c.channelAxis, true);
    const wq = fresh(`${c.weight.name}_int8`);
    const ws = fresh(`${c.weight.name}_scale`);
    const wf = fresh(`${c.weight.name}_dequantized`);
    newInitializers.push(int8Tensor(wq, dims, q), floatTensor(ws, [scales.length], scales));
    // Symmetric weights: zero point 0, which is DequantizeLinear's default. Conv's and MatMul's weight
    // DQ omit it (one int8 per channel; QLinearConv and QLinearMatMul still fused — the encoder's 8
    // MatMul, same outputs); onnxruntime fuses QGemm only with the zero point present, so Gemm keeps its.
    const wInputs = [wq, ws];
    if (node.opType === 'Gemm') {
      const wz = fresh(`${c.weight.name}_zero_point`);
      newInitializers.push(int8Tensor(wz, [scales.length], new Int8Array(scales.length)));
      wInputs.push(wz);
    }
    nodes.push(makeNode('DequantizeLinear', wInputs, [wf], fresh(`DequantizeLinear_${c.weight.name}`), { axis: { int: c.channelAxis } }));
    quantizedWeights.add(c.weight.name);

    const inputs = [activation, wf];
    if (c.bias) {
      // int32 bias at scale x_scale * w_scale[c], zero point 0: what QLinearConv/QGemm add to the accumulator.
      const xScale = activationParams(xRange, activationType).scale;
      const b = readFloatTensor(c.bias);
      const bScales = scales.map((s) => s * xScale);
      const bq = Int32Array.from(b, (v, i) => roundHalfToEven(v / bScales[i]!));
      const bqName = fresh(`${c.bias.name}_int32`);
      const bsName = fresh(`${c.bias.name}_scale`);
      const bf = fresh(`${c.bias.name}_dequantized`);
      newInitializers.push(int32Tensor(bqName, [b.length], bq));
      // The bias scale is x_scale * w_scale computed from the two stored scales, not a third copy
      // (4 bytes a channel): onnxruntime folds the Mul before it fuses the QDQ group. A float32
      // product of float32s rounds exactly as bScales did here, so the int32 values above match it.
      nodes.push(
        makeNode('Mul', [scaleOf.get(activation)!, ws], [bsName], fresh(`${c.bias.name}_scale_Mul`)),
        makeNode('DequantizeLinear', [bqName, bsName], [bf], fresh(`DequantizeLinear_${c.bias.name}`), { axis: { int: 0 } }),
      );
      inputs.push(bf);
    }
    node.input = [...inputs, ...node.input.slice(inputs.length)];
    const raw = fresh(`q${pairs}_float`); // the float input of the pair quantize() makes next
    node.output = [raw];
    nodes.push(node, ...quantize(raw, c.output, ranges.get(c.output)!));
  }

  graph.node = nodes;
  graph.initializer.push(...newInitializers);
  // Drop initializers nothing reads any more (replaced float weights, folded BatchNorm parameters, Clip bounds).
  dropUnreadInitializers(graph);
  dropStaleValueInfo(graph);
  // Nodes computing in float (model-input MatMul/Gemm, nodes without ranges) store their weight as
  // int8 too: weight rounding only, folded to float32 at session creation. The logits layer stores
  // float16: on top of quantized activations, int8 logits weights flipped top-1 on 0.1–0.3 % more
  // held-out samples of the PyTorch MLP and CNN (MLP 0.997 → 0.994), float16 on none.
  const stored = storeWeightsAsInt8(graph, { keepFloat: options.keepFloat, float16: logits });
  // LayerNorm/bias parameters and the weights' per-channel scales (float16-representable already)
  // in 16 bits, read through Casts onnxruntime folds before it fuses the Q/DQ groups (the encoder
  // still runs QLinearMatMul): the PyTorch encoder 0.2751x → 0.2686x, top-1 agreement on held-out
  // fixture data unchanged (encoder 0.987, CNN 0.998, MLP 0.997, same seeds before and after).
  storeParametersAsFloat16(graph, new Set([...FLOAT16_PARAMETER_READERS, 'DequantizeLinear:1']));
  checkTopology(graph, 'output', 'quantize to int8');
  const floatComputeNames = new Set(floatCompute.map(label));
  const totalWeightBytes = sumWeightBytes(weightSizes, weightSizes.keys());
  const quantizedBytes = sumWeightBytes(weightSizes, [...quantizedWeights, ...stored.quantizedWeights]);

  return {
    model,
    quantizedNodes: [...chosen.keys()].map(label),
    floatNodes,
    foldedBatchNorms,
    absorbedActivations: absorbed.size,
    quantizedWeightShare: totalWeightBytes === 0 ? 0 : quantizedBytes / totalWeightBytes,
    floatComputeNodes: [...floatComputeNames],
    weightOnlyNodes: stored.quantizedNodes.filter((n) => !floatComputeNames.has(n)),
    float16WeightNodes: stored.float16Nodes,
  };
}
