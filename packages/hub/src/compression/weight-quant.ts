import {
  castNode,
  cloneModel,
  ELEMENT_TYPE,
  elementCount,
  float16Tensor,
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
import { checkTopology, isDefaultDomain, nodeLabel } from './graph-check.js';
import { dropUnreadInitializers, int8Tensor, intAttr, outputLayerOf, storeParametersAsFloat16 } from './graph-edit.js';
import { quantizeAlongAxis } from './quant-math.js';

/**
 * Weight-only int8, shared by the int8-weights and pruned transforms. Each constant float weight
 * becomes int8 + Cast(to=FLOAT) + Mul(scale), all reading initializers only. Not DequantizeLinear:
 * onnxruntime keeps DQ nodes (QDQ form) and dequantizes on every run (measured 13–26x slower here),
 * while Cast+Mul on initializers is constant-folded at session creation, so the running graph is fp32.
 */

export interface WeightOnlyResult {
  readonly model: ModelProto;
  /** Names (or op types when unnamed) of the Conv/MatMul/Gemm nodes now reading an int8 weight. */
  readonly quantizedNodes: string[];
  /** Conv/MatMul/Gemm nodes whose weight stays float32, and why. */
  readonly floatNodes: { node: string; reason: string }[];
  /** float32 bytes of the distinct constant weights Conv/MatMul/Gemm nodes read, and of those now int8. */
  readonly weightBytes: number;
  readonly quantizedWeightBytes: number;
  /** quantizedWeightBytes / weightBytes, 0 when there are no such weights. */
  readonly quantizedWeightShare: number;
}

export interface WeightOnlyOptions {
  /** Names of Conv/MatMul/Gemm nodes whose weight stays float32. */
  readonly keepFloat?: readonly string[];
  /**
   * Rewrites a weight's float values before quantization (pruning zeroes entries here); `node` is
   * the first node that reads it. Returns the values to quantize.
   */
  readonly prepare?: (values: Float32Array, weight: TensorProto, node: NodeProto) => Float32Array;
  /** Sees each weight's int8 values once they are made (pruning counts the zeros the file holds). */
  readonly inspect?: (int8: Int8Array, weight: TensorProto, node: NodeProto) => void;
  /**
   * Nodes whose weight is stored as float16 (+ Cast to float, folded at load like the int8 form)
   * instead of int8: for a layer where int8 rounding measurably flips top-1 classes.
   */
  readonly float16?: ReadonlySet<NodeProto>;
}

/** Where a node's weight is quantized per channel: the dimension holding the output channel. */
interface Plan {
  readonly node: NodeProto;
  readonly weight: TensorProto;
  readonly axis: number;
}

const WEIGHT_OPS = new Set(['Conv', 'Gemm', 'MatMul']);
export const isWeightOp = (node: NodeProto): boolean => isDefaultDomain(node) && WEIGHT_OPS.has(node.opType);
const isMatMulOrGemm = (node: NodeProto): boolean => isDefaultDomain(node) && (node.opType === 'MatMul' || node.opType === 'Gemm');

/**
 * The float32 constant weight a node reads as input 1 when int8 can store it, or why not. `role` names
 * it in the reason ('weight', or the op's input name: B, W); `rankProblem` says what is wrong with its
 * rank for this use, if anything.
 */
export function int8WeightOrReason(graph: GraphProto, node: NodeProto, role: string, rankProblem: (rank: number, name: string) => string | undefined): TensorProto | string {
  const name = node.input[1] ?? '';
  const weight = graph.initializer.find((t) => t.name === name);
  if (!weight) return `${role} "${name}" is not an initializer`;
  if (weight.dataType !== ELEMENT_TYPE.FLOAT) return `${role} "${name}" has element type ${weight.dataType}, not float`;
  if (!hasInlineData(weight)) return `${role} "${name}" keeps its data in an external file`;
  const rankReason = rankProblem(weight.dims.length, name);
  if (rankReason !== undefined) return rankReason;
  if (!readFloatTensor(weight).every(Number.isFinite)) return `${role} "${name}" holds a NaN or infinite value, which no int8 scale represents`;
  return weight;
}

/** Records the float32 bytes of the float weight a node reads as input 1, if it reads one. */
export function recordWeightSize(graph: GraphProto, node: NodeProto, sizes: Map<string, number>): void {
  const weight = graph.initializer.find((t) => t.name === node.input[1] && t.dataType === ELEMENT_TYPE.FLOAT);
  if (weight) sizes.set(weight.name, elementCount(weight) * 4);
}

/** The float constant weight a node reads as its input 1 and its output-channel axis, or why it stays float. */
function planNode(graph: GraphProto, node: NodeProto): Plan | string {
  const weight = int8WeightOrReason(graph, node, 'weight', (rank, name) => {
    if (node.opType === 'Conv' && rank < 3) return `Conv weight "${name}" has ${rank} dimensions, expected [C_out, C_in/group, k…]`;
    if (node.opType !== 'Conv' && rank !== 2) return `${node.opType} weight "${name}" has ${rank} dimensions; per-channel int8 needs a 2-D weight`;
    return undefined;
  });
  if (typeof weight === 'string') return weight;
  // Conv: output channels on axis 0. Gemm transB=1 stores B as [N, K] (rows are outputs); MatMul and
  // Gemm transB=0 store [K, N] (columns are outputs).
  const axis = node.opType === 'Conv' || (node.opType === 'Gemm' && intAttr(node, 'transB', 0) !== 0) ? 0 : 1;
  return { node, weight, axis };
}

/** MatMul/Gemm nodes reached walking back from the graph outputs without passing another MatMul/Gemm (int8-dynamic's definition). */
export const outputLayer = (graph: GraphProto): Set<NodeProto> => outputLayerOf(graph, isMatMulOrGemm);

/**
 * Per-weight int8 copies and their dequantizing nodes, made once per (weight, axis) however many
 * nodes read it, so a shared weight is stored once and every reader is rewired to one output.
 */
class DequantizedWeights {
  private readonly made = new Map<string, string>();
  readonly initializers: TensorProto[] = [];
  readonly nodes: NodeProto[] = [];

  constructor(
    private readonly fresh: (base: string) => string,
    private readonly hooks: Pick<WeightOnlyOptions, 'prepare' | 'inspect'>,
  ) {}

  /** A float16 copy read through Cast(to=FLOAT), made once per weight; its name. */
  half(plan: Plan): string {
    const key = `${plan.weight.name}\0float16`;
    const existing = this.made.get(key);
    if (existing) return existing;
    const base = plan.weight.name;
    const names = { half: this.fresh(`${base}_float16`), out: this.fresh(`${base}_float`) };
    this.initializers.push(float16Tensor(names.half, plan.weight.dims, readFloatTensor(plan.weight)));
    this.nodes.push(castNode(names.half, names.out, ELEMENT_TYPE.FLOAT));
    this.made.set(key, names.out);
    return names.out;
  }

  /** The name of the float tensor the node should now read as its weight. */
  get(plan: Plan): string {
    const key = `${plan.weight.name}\0${plan.axis}`;
    const existing = this.made.get(key);
    if (existing) return existing;
    const dims = plan.weight.dims.map(Number);
    const float = readFloatTensor(plan.weight);
    const prepared = this.hooks.prepare ? this.hooks.prepare(float, plan.weight, plan.node) : float;
    // Symmetric, zero point 0: a pruned 0 stays exactly 0. Scales are float16 values (rounded up
    // before quantizing), so storeParametersAsFloat16 stores them in 16 bits losing nothing.
    const { q, scales } = quantizeAlongAxis(prepared, dims, plan.axis, true);
    this.hooks.inspect?.(q, plan.weight, plan.node);
    const base = plan.weight.name;
    const names = { int8: this.fresh(`${base}_int8`), scale: this.fresh(`${base}_scale`), cast: this.fresh(`${base}_int8_float`), out: this.fresh(`${base}_dequantized`) };
    // The scale broadcasts along the channel axis: [C,1,1,1] for Conv, [N,1] or [1,N] for Gemm/MatMul.
    const scaleDims = dims.map((d, i) => (i === plan.axis ? d : 1));
    this.initializers.push(int8Tensor(names.int8, plan.weight.dims, q), floatTensor(names.scale, scaleDims, scales));
    this.nodes.push(castNode(names.int8, names.cast, ELEMENT_TYPE.FLOAT), makeNode('Mul', [names.cast, names.scale], [names.out], this.fresh(`${base}_dequantize`)));
    this.made.set(key, names.out);
    return names.out;
  }
}

/** How often each name is read: node inputs (each position), subgraph captures and graph outputs. */
function readCounts(graph: GraphProto): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (name: string): void => void counts.set(name, (counts.get(name) ?? 0) + 1);
  graph.output.forEach((o) => add(o.name));
  for (const node of graph.node) {
    node.input.forEach((x) => x !== '' && add(x));
    subgraphReads(node).forEach(add);
  }
  return counts;
}

export interface Int8StoredWeights {
  /** Names (or op types) of the Conv/MatMul/Gemm nodes now reading an int8-stored weight. */
  readonly quantizedNodes: string[];
  readonly floatNodes: { node: string; reason: string }[];
  /** float32 bytes of each distinct constant weight the graph's Conv/MatMul/Gemm nodes read. */
  readonly weightSizes: Map<string, number>;
  /** The float weights now stored as int8 (their float initializers are gone). */
  readonly quantizedWeights: Set<string>;
  /** Nodes (labels) and weights now stored as float16 (the float16 option). */
  readonly float16Nodes: string[];
  readonly float16Weights: Set<string>;
}

/**
 * The weight-only rewrite, in place on a graph the caller owns: every Conv/Gemm/MatMul whose input 1
 * is a float32 constant weight (and is not in keepFloat) reads it through int8 + Cast + Mul instead.
 * A weight something else also reads as float32 (another op, a keepFloat node, a graph output) stays
 * float for every reader: an int8 copy beside the float one would only add bytes. int8-dynamic and
 * int8-static call this after their own rewrite, for the nodes they leave computing in float.
 */
export function storeWeightsAsInt8(graph: GraphProto, options: WeightOnlyOptions = {}): Int8StoredWeights {
  const keepFloat = new Set(options.keepFloat ?? []);
  const weightSizes = new Map<string, number>();
  const floatNodes: Int8StoredWeights['floatNodes'] = [];
  const plans: Plan[] = [];
  for (const node of graph.node) {
    if (!isWeightOp(node)) continue;
    recordWeightSize(graph, node, weightSizes);
    const plan = keepFloat.has(node.name) ? 'kept float by the keepFloat option' : planNode(graph, node);
    if (typeof plan === 'string') floatNodes.push({ node: nodeLabel(node), reason: plan });
    else plans.push(plan);
  }
  const reads = readCounts(graph);
  const planned = new Map<string, number>();
  plans.forEach((p) => planned.set(p.weight.name, (planned.get(p.weight.name) ?? 0) + 1));
  const weights = new DequantizedWeights(nameAllocator(graph), options);
  const quantizedWeights = new Set<string>();
  const quantizedNodes: string[] = [];
  const float16Weights = new Set<string>();
  const float16Nodes: string[] = [];
  for (const plan of plans) {
    if (reads.get(plan.weight.name) !== planned.get(plan.weight.name)) {
      floatNodes.push({ node: nodeLabel(plan.node), reason: `weight "${plan.weight.name}" is also read as float32 elsewhere; an int8 copy beside it would only add bytes` });
      continue;
    }
    const half = options.float16?.has(plan.node) ?? false;
    plan.node.input[1] = half ? weights.half(plan) : weights.get(plan);
    (half ? float16Weights : quantizedWeights).add(plan.weight.name);
    (half ? float16Nodes : quantizedNodes).push(nodeLabel(plan.node));
  }
  if (quantizedNodes.length + float16Nodes.length > 0) {
    // The dequantizing nodes read initializers only, so placing them first keeps the graph sorted.
    graph.node = [...weights.nodes, ...graph.node];
    graph.initializer.push(...weights.initializers);
    dropUnreadInitializers(graph, new Set([...quantizedWeights, ...float16Weights]));
  }
  return { quantizedNodes, floatNodes, weightSizes, quantizedWeights, float16Nodes, float16Weights };
}

/** Bytes of the named weights, each counted once. */
export const sumWeightBytes = (sizes: ReadonlyMap<string, number>, names: Iterable<string>): number => [...new Set(names)].reduce((a, name) => a + (sizes.get(name) ?? 0), 0);

/**
 * The weight-only int8 model (int8-weights and pruned): storeWeightsAsInt8 on a copy. Biases and
 * activations stay float32. Never edits `source`; a node it cannot handle keeps its float weight,
 * with the reason.
 */
export function quantizeWeightsOnly(source: ModelProto, options: WeightOnlyOptions, action: string): WeightOnlyResult {
  const model = cloneModel(source);
  const graph = requireGraph(model);
  checkTopology(graph, 'input', action);
  const { quantizedNodes, floatNodes, weightSizes, quantizedWeights } = storeWeightsAsInt8(graph, options);
  // Scales, biases and LayerNorm parameters in 16 bits too; a model with nothing quantized stays as it was.
  if (quantizedNodes.length > 0) {
    storeParametersAsFloat16(graph);
    checkTopology(graph, 'output', action);
  }
  const weightBytes = sumWeightBytes(weightSizes, weightSizes.keys());
  const quantizedWeightBytes = sumWeightBytes(weightSizes, quantizedWeights);
  return { model, quantizedNodes, floatNodes, weightBytes, quantizedWeightBytes, quantizedWeightShare: weightBytes > 0 ? quantizedWeightBytes / weightBytes : 0 };
}
