import { EdgefleetError } from '@edgefleet/shared';
import {
  cloneModel,
  ELEMENT_TYPE,
  floatTensor,
  hasInlineData,
  makeNode,
  nameAllocator,
  readFloatTensor,
  requireGraph,
  subgraphReads,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from '@edgefleet/shared/onnx';
import { checkTopology, isDefaultDomain, nodeLabel as label } from './graph-check.js';
import { uint8Params, type ActivationRange } from './calibration.js';

/**
 * int8-static: QDQ (QuantizeLinear/DequantizeLinear pairs onnxruntime fuses into QLinearConv,
 * QGemm, QLinearMatMul) with symmetric per-channel int8 weights and uint8 activations whose ranges
 * come from calibration. uint8 activations (U8S8) because onnxruntime on x86 fuses an activation
 * pair only as uint8 — measured here, see REFERENCES.md "Compression". The last MatMul/Gemm before
 * the model output stays float: requantizing logits costs accuracy and saves almost nothing.
 */

export interface Int8StaticResult {
  readonly model: ModelProto;
  /** Names (or op types) of nodes now computing in int8. */
  readonly quantizedNodes: string[];
  /** Conv/MatMul/Gemm nodes left float, with the reason. */
  readonly floatNodes: { node: string; reason: string }[];
  readonly foldedBatchNorms: number;
  readonly absorbedActivations: number;
  /** Share of the Conv/MatMul/Gemm weight bytes (fp32) that are now int8. */
  readonly quantizedWeightShare: number;
}

const QUANTIZABLE = new Set(['Conv', 'MatMul', 'Gemm']);
const MIN_OPSET = 13; // per-channel DequantizeLinear (axis) arrived in opset 13


function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : fallback;
}
function floatAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? a.f : fallback;
}

function constantFloat(graph: GraphProto, name: string | undefined): TensorProto | undefined {
  if (!name) return undefined;
  const t = graph.initializer.find((x) => x.name === name);
  return t && t.dataType === ELEMENT_TYPE.FLOAT && hasInlineData(t) ? t : undefined;
}

/** A tensor of another element type, made by retyping a float tensor's shell (the builder makes only float/int64). */
function typedTensor(name: string, dims: readonly number[], dataType: number, bytes: Uint8Array<ArrayBuffer>): TensorProto {
  const t = floatTensor(name, dims, new Float32Array(0));
  t.dims = dims.map(BigInt);
  t.dataType = dataType;
  t.rawData = bytes;
  return t;
}
const int8Tensor = (name: string, dims: readonly number[], v: Int8Array<ArrayBuffer>): TensorProto => typedTensor(name, dims, ELEMENT_TYPE.INT8, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
const uint8Tensor = (name: string, dims: readonly number[], v: Uint8Array<ArrayBuffer>): TensorProto => typedTensor(name, dims, ELEMENT_TYPE.UINT8, v);
const int32Tensor = (name: string, dims: readonly number[], v: Int32Array<ArrayBuffer>): TensorProto => typedTensor(name, dims, ELEMENT_TYPE.INT32, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));

function consumersOf(graph: GraphProto): Map<string, NodeProto[]> {
  const map = new Map<string, NodeProto[]>();
  for (const node of graph.node) {
    for (const name of new Set(node.input)) {
      if (name === '') continue;
      const readers = map.get(name);
      if (readers) readers.push(node);
      else map.set(name, [node]);
    }
  }
  return map;
}

/** Names read outside plain node inputs: graph outputs and subgraph captures. A rename must not break them. */
function pinnedNames(graph: GraphProto): Set<string> {
  return new Set([...graph.output.map((o) => o.name), ...graph.node.flatMap(subgraphReads)]);
}

/**
 * Folds a BatchNormalization (inference form) that is a Conv's only consumer into the Conv's weights
 * and bias; the Conv then writes the BatchNormalization's output. New initializers, so a weight
 * another node shares is left as it was.
 */
function foldBatchNorms(graph: GraphProto, fresh: (base: string) => string): number {
  const consumers = consumersOf(graph);
  const pinned = pinnedNames(graph);
  const dropped = new Set<NodeProto>();
  for (const conv of graph.node) {
    if (conv.opType !== 'Conv' || !isDefaultDomain(conv) || conv.output.length !== 1) continue;
    const out = conv.output[0]!;
    const readers = consumers.get(out) ?? [];
    const bn = readers[0];
    if (readers.length !== 1 || pinned.has(out) || !bn || bn.opType !== 'BatchNormalization' || !isDefaultDomain(bn)) continue;
    if (bn.output.filter((o) => o !== '').length !== 1 || bn.input[0] !== out || intAttr(bn, 'training_mode', 0) !== 0) continue;
    const weight = constantFloat(graph, conv.input[1]);
    const params = [1, 2, 3, 4].map((i) => constantFloat(graph, bn.input[i]));
    const bias = conv.input[2] ? constantFloat(graph, conv.input[2]) : undefined;
    if (!weight || params.some((p) => !p) || (conv.input[2] && !bias)) continue;
    const [gamma, beta, mean, variance] = params.map((p) => readFloatTensor(p!));
    const channels = Number(weight.dims[0]);
    if ([gamma, beta, mean, variance].some((p) => p!.length !== channels)) continue;
    const epsilon = floatAttr(bn, 'epsilon', 1e-5);
    const w = readFloatTensor(weight);
    const b = bias ? readFloatTensor(bias) : new Float32Array(channels);
    const perChannel = w.length / channels;
    const folded = new Float32Array(w.length);
    const foldedBias = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      const s = gamma![c]! / Math.sqrt(variance![c]! + epsilon);
      for (let k = 0; k < perChannel; k++) folded[c * perChannel + k] = w[c * perChannel + k]! * s;
      foldedBias[c] = (b[c]! - mean![c]!) * s + beta![c]!;
    }
    const wName = fresh(`${weight.name}_bnfolded`);
    const bName = fresh(`${bias?.name ?? `${label(conv)}_bias`}_bnfolded`);
    graph.initializer.push(floatTensor(wName, weight.dims.map(Number), folded), floatTensor(bName, [channels], foldedBias));
    conv.input[1] = wName;
    conv.input[2] = bName;
    conv.output[0] = bn.output.find((o) => o !== '')!;
    dropped.add(bn);
  }
  graph.node = graph.node.filter((n) => !dropped.has(n));
  return dropped.size;
}

interface Candidate {
  readonly node: NodeProto;
  readonly activation: string;
  readonly weight: TensorProto;
  /** Weight axis holding the output channels: one scale per channel along it. */
  readonly channelAxis: number;
  readonly bias?: TensorProto;
  /** The tensor whose range the output is quantized with, and the Relu folded into it, if any. */
  readonly output: string;
  readonly absorbed?: NodeProto;
}

/** True when some path from the tensor reaches a graph output without another Conv/MatMul/Gemm: the logits. */
function feedsOutputDirectly(tensor: string, graph: GraphProto, consumers: Map<string, NodeProto[]>): boolean {
  const outputs = new Set(graph.output.map((o) => o.name));
  const seen = new Set<string>();
  const stack = [tensor];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (outputs.has(name)) return true;
    if (seen.has(name)) continue;
    seen.add(name);
    for (const node of consumers.get(name) ?? []) if (!QUANTIZABLE.has(node.opType)) stack.push(...node.output);
  }
  return false;
}

function candidateOrReason(node: NodeProto, graph: GraphProto, consumers: Map<string, NodeProto[]>, pinned: Set<string>): Candidate | string {
  const weight = constantFloat(graph, node.input[1]);
  if (!weight) return 'its weight is not a float initializer stored in the model';
  const rank = weight.dims.length;
  let channelAxis: number;
  let bias: TensorProto | undefined;
  if (node.opType === 'Conv') {
    if (rank < 3) return `Conv weight of rank ${rank}`;
    channelAxis = 0;
    if (node.input[2]) bias = constantFloat(graph, node.input[2]) ?? undefined;
    if (node.input[2] && !bias) return 'its bias is not a float initializer';
  } else if (node.opType === 'Gemm') {
    if (rank !== 2) return `Gemm weight of rank ${rank}`;
    if (intAttr(node, 'transA', 0) !== 0 || floatAttr(node, 'alpha', 1) !== 1) return 'transA or alpha other than the defaults';
    channelAxis = intAttr(node, 'transB', 0) === 1 ? 0 : 1;
    if (node.input[2]) {
      bias = constantFloat(graph, node.input[2]);
      if (!bias || floatAttr(node, 'beta', 1) !== 1) return 'its bias is not a float initializer with beta 1';
      const outChannels = Number(weight.dims[channelAxis]);
      if (bias.dims.length !== 1 || Number(bias.dims[0]) !== outChannels) return 'its bias is broadcast, not one value per output';
    }
  } else {
    if (rank !== 2) return `MatMul weight of rank ${rank}`;
    channelAxis = 1;
  }
  if (node.output.length !== 1) return 'more than one output';
  const activation = node.input[0] ?? '';
  if (activation === '' || activation === node.input[1]) return 'no activation input';
  if (feedsOutputDirectly(node.output[0]!, graph, consumers)) return 'it produces the model output (logits stay float)';
  const out = node.output[0]!;
  const readers = consumers.get(out) ?? [];
  const relu = readers.length === 1 && !pinned.has(out) && readers[0]!.opType === 'Relu' && isDefaultDomain(readers[0]!) ? readers[0] : undefined;
  return { node, activation, weight, channelAxis, bias, output: relu ? relu.output[0]! : out, absorbed: relu };
}

/** The Conv/MatMul/Gemm nodes the transform can quantize, and why each other one stays float. */
function plan(graph: GraphProto): { candidates: Candidate[]; floatNodes: { node: string; reason: string }[] } {
  const consumers = consumersOf(graph);
  const pinned = pinnedNames(graph);
  const candidates: Candidate[] = [];
  const floatNodes: { node: string; reason: string }[] = [];
  for (const node of graph.node) {
    if (!QUANTIZABLE.has(node.opType) || !isDefaultDomain(node)) continue;
    const c = candidateOrReason(node, graph, consumers, pinned);
    if (typeof c === 'string') floatNodes.push({ node: label(node), reason: c });
    else candidates.push(c);
  }
  return { candidates, floatNodes };
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
export function int8StaticCalibrationTensors(source: ModelProto): string[] {
  const model = cloneModel(source);
  checkOpset(model);
  const graph = requireGraph(model);
  checkTopology(graph, 'input', 'quantize to int8');
  foldBatchNorms(graph, nameAllocator(graph));
  const names = new Set<string>();
  for (const c of plan(graph).candidates) names.add(c.activation).add(c.output);
  return [...names];
}

/** Symmetric int8 per output channel: scale = max |w| / 127 along the channel, zero point 0. */
export function quantizeWeightPerChannel(values: Float32Array, dims: readonly number[], axis: number): { q: Int8Array<ArrayBuffer>; scales: Float32Array<ArrayBuffer> } {
  const channels = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channelOf = (i: number): number => Math.floor(i / inner) % channels;
  const maxAbs = new Float32Array(channels);
  values.forEach((v, i) => {
    const c = channelOf(i);
    maxAbs[c] = Math.max(maxAbs[c]!, Math.abs(v));
  });
  const scales = maxAbs.map((m) => (m > 0 ? m / 127 : 1));
  const q = new Int8Array(values.length);
  values.forEach((v, i) => {
    q[i] = Math.max(-127, Math.min(127, Math.round(v / scales[channelOf(i)]!)));
  });
  return { q, scales };
}

/**
 * int8-static variant of a float32 model. `ranges` holds a calibrated range for the tensors
 * int8StaticCalibrationTensors names; a node whose ranges are missing stays float (reported).
 * Input untouched; the output is checked to be topologically sound before it is returned.
 */
export function convertToInt8Static(source: ModelProto, ranges: ReadonlyMap<string, ActivationRange>): Int8StaticResult {
  const model = cloneModel(source);
  checkOpset(model);
  const graph = requireGraph(model);
  checkTopology(graph, 'input', 'quantize to int8');
  const fresh = nameAllocator(graph);
  const foldedBatchNorms = foldBatchNorms(graph, fresh);
  const { candidates, floatNodes } = plan(graph);

  const weightBytes = (t: TensorProto): number => 4 * t.dims.reduce((n, d) => n * Number(d), 1);
  let totalWeightBytes = 0;
  for (const node of graph.node) {
    if (QUANTIZABLE.has(node.opType) && isDefaultDomain(node)) {
      const w = constantFloat(graph, node.input[1]);
      if (w) totalWeightBytes += weightBytes(w);
    }
  }

  const chosen = new Map<NodeProto, Candidate>();
  for (const c of candidates) {
    const missing = [c.activation, c.output].filter((t) => !ranges.has(t));
    if (missing.length > 0) floatNodes.push({ node: label(c.node), reason: `no calibrated range for ${missing.join(', ')}` });
    else chosen.set(c.node, c);
  }

  const newInitializers: TensorProto[] = [];
  const quantize = (tensor: string, output: string, range: ActivationRange): NodeProto[] => {
    const { scale, zeroPoint } = uint8Params(range);
    const scaleName = fresh(`${tensor}_scale`);
    const zpName = fresh(`${tensor}_zero_point`);
    const quantized = fresh(`${tensor}_quantized`);
    newInitializers.push(floatTensor(scaleName, [], Float32Array.of(scale)), uint8Tensor(zpName, [], Uint8Array.of(zeroPoint)));
    // One QuantizeLinear feeding exactly one DequantizeLinear: the shape onnxruntime fuses.
    return [
      makeNode('QuantizeLinear', [tensor, scaleName, zpName], [quantized], fresh(`QuantizeLinear_${tensor}`)),
      makeNode('DequantizeLinear', [quantized, scaleName, zpName], [output], fresh(`DequantizeLinear_${tensor}`)),
    ];
  };

  /** Tensors that are already the output of an inserted DequantizeLinear (quantized node outputs). */
  const dequantized = new Set<string>();
  for (const c of chosen.values()) dequantized.add(c.output);
  const absorbed = new Set<NodeProto>([...chosen.values()].flatMap((c) => (c.absorbed ? [c.absorbed] : [])));

  let quantizedBytes = 0;
  const nodes: NodeProto[] = [];
  for (const node of graph.node) {
    if (absorbed.has(node)) continue; // its clamp now lives in the zero point of the output range
    const c = chosen.get(node);
    if (!c) {
      nodes.push(node);
      continue;
    }
    const xRange = ranges.get(c.activation)!;
    let activation = c.activation;
    if (!dequantized.has(c.activation)) {
      activation = fresh(`${c.activation}_dequantized`);
      nodes.push(...quantize(c.activation, activation, xRange));
    }

    const dims = c.weight.dims.map(Number);
    const { q, scales } = quantizeWeightPerChannel(readFloatTensor(c.weight), dims, c.channelAxis);
    const wq = fresh(`${c.weight.name}_int8`);
    const ws = fresh(`${c.weight.name}_scale`);
    const wz = fresh(`${c.weight.name}_zero_point`);
    const wf = fresh(`${c.weight.name}_dequantized`);
    newInitializers.push(int8Tensor(wq, dims, q), floatTensor(ws, [scales.length], scales), int8Tensor(wz, [scales.length], new Int8Array(scales.length)));
    nodes.push(makeNode('DequantizeLinear', [wq, ws, wz], [wf], fresh(`DequantizeLinear_${c.weight.name}`), { axis: { int: c.channelAxis } }));
    quantizedBytes += weightBytes(c.weight);

    const inputs = [activation, wf];
    if (c.bias) {
      // int32 bias at scale x_scale * w_scale[c], zero point 0: what QLinearConv/QGemm add to the accumulator.
      const xScale = uint8Params(xRange).scale;
      const b = readFloatTensor(c.bias);
      const bScales = scales.map((s) => s * xScale);
      const bq = Int32Array.from(b, (v, i) => Math.round(v / bScales[i]!));
      const bqName = fresh(`${c.bias.name}_int32`);
      const bsName = fresh(`${c.bias.name}_scale`);
      const bf = fresh(`${c.bias.name}_dequantized`);
      newInitializers.push(int32Tensor(bqName, [b.length], bq), floatTensor(bsName, [b.length], bScales));
      nodes.push(makeNode('DequantizeLinear', [bqName, bsName], [bf], fresh(`DequantizeLinear_${c.bias.name}`), { axis: { int: 0 } }));
      inputs.push(bf);
    }
    node.input = [...inputs, ...node.input.slice(inputs.length)];
    const raw = fresh(`${node.output[0]}_float`);
    node.output = [raw];
    nodes.push(node, ...quantize(raw, c.output, ranges.get(c.output)!));
  }

  graph.node = nodes;
  graph.initializer.push(...newInitializers);
  // Drop initializers nothing reads any more (replaced float weights, folded BatchNorm parameters).
  const read = new Set<string>([...nodes.flatMap((n) => n.input), ...nodes.flatMap(subgraphReads), ...graph.output.map((o) => o.name)]);
  const unused = new Set(graph.initializer.filter((t) => !read.has(t.name)).map((t) => t.name));
  graph.initializer = graph.initializer.filter((t) => !unused.has(t.name));
  graph.input = graph.input.filter((i) => !unused.has(i.name));
  const produced = new Set<string>([...graph.input.map((i) => i.name), ...graph.initializer.map((t) => t.name), ...nodes.flatMap((n) => n.output)]);
  graph.valueInfo = graph.valueInfo.filter((v) => produced.has(v.name));
  checkTopology(graph, 'output', 'quantize to int8');

  return {
    model,
    quantizedNodes: [...chosen.keys()].map(label),
    floatNodes,
    foldedBatchNorms,
    absorbedActivations: absorbed.size,
    quantizedWeightShare: totalWeightBytes === 0 ? 0 : quantizedBytes / totalWeightBytes,
  };
}
