import {
  castNode,
  cloneModel,
  ELEMENT_TYPE,
  elementCount,
  floatTensor,
  hasInlineData,
  makeNode,
  nameAllocator,
  readFloatTensor,
  requireGraph,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from '@edgefleet/shared/onnx';
import { checkTopology, isDefaultDomain, nodeLabel } from './graph-check.js';
import { dropUnreadInitializers, int8Tensor } from './graph-edit.js';
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

function intAttr(node: NodeProto, name: string): number | undefined {
  const a = node.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : undefined;
}

/** The float constant weight a node reads as its input 1 and its output-channel axis, or why it stays float. */
function planNode(graph: GraphProto, node: NodeProto): Plan | string {
  const name = node.input[1] ?? '';
  const weight = graph.initializer.find((t) => t.name === name);
  if (!weight) return `weight "${name}" is not an initializer`;
  if (weight.dataType !== ELEMENT_TYPE.FLOAT) return `weight "${name}" has element type ${weight.dataType}, not float`;
  if (!hasInlineData(weight)) return `weight "${name}" keeps its data in an external file`;
  const rank = weight.dims.length;
  if (node.opType === 'Conv' && rank < 3) return `Conv weight "${name}" has ${rank} dimensions, expected [C_out, C_in/group, k…]`;
  if (node.opType !== 'Conv' && rank !== 2) return `${node.opType} weight "${name}" has ${rank} dimensions; per-channel int8 needs a 2-D weight`;
  if (!readFloatTensor(weight).every(Number.isFinite)) return `weight "${name}" holds a NaN or infinite value, which no int8 scale represents`;
  // Conv: output channels on axis 0. Gemm transB=1 stores B as [N, K] (rows are outputs); MatMul and
  // Gemm transB=0 store [K, N] (columns are outputs).
  const axis = node.opType === 'Conv' || (node.opType === 'Gemm' && (intAttr(node, 'transB') ?? 0) !== 0) ? 0 : 1;
  return { node, weight, axis };
}

/** MatMul/Gemm nodes reached walking back from the graph outputs without passing another MatMul/Gemm (int8-dynamic's definition). */
export function outputLayer(graph: GraphProto): Set<NodeProto> {
  const producer = new Map<string, NodeProto>();
  graph.node.forEach((n) => n.output.forEach((o) => producer.set(o, n)));
  const found = new Set<NodeProto>();
  const seen = new Set<NodeProto>();
  const pending = graph.output.map((o) => producer.get(o.name)).filter((n) => n !== undefined);
  for (let node = pending.pop(); node; node = pending.pop()) {
    if (seen.has(node)) continue;
    seen.add(node);
    if (isMatMulOrGemm(node)) found.add(node);
    else node.input.forEach((i) => producer.has(i) && pending.push(producer.get(i)!));
  }
  return found;
}

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

  /** The name of the float tensor the node should now read as its weight. */
  get(plan: Plan): string {
    const key = `${plan.weight.name}\0${plan.axis}`;
    const existing = this.made.get(key);
    if (existing) return existing;
    const dims = plan.weight.dims.map(Number);
    const float = readFloatTensor(plan.weight);
    const prepared = this.hooks.prepare ? this.hooks.prepare(float, plan.weight, plan.node) : float;
    // Symmetric, zero point 0: a pruned 0 stays exactly 0.
    const { q, scales } = quantizeAlongAxis(prepared, dims, plan.axis);
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

/**
 * The weight-only int8 rewrite: every Conv/Gemm/MatMul whose input 1 is a float32 constant weight
 * (and is not in keepFloat) reads it through int8 + Cast + Mul instead. Biases and activations stay
 * float32. Never edits `source`; a node it cannot handle keeps its float weight, with the reason.
 */
export function quantizeWeightsOnly(source: ModelProto, options: WeightOnlyOptions, action: string): WeightOnlyResult {
  const model = cloneModel(source);
  const graph = requireGraph(model);
  checkTopology(graph, 'input', action);
  const keepFloat = new Set(options.keepFloat ?? []);
  const weights = new DequantizedWeights(nameAllocator(graph), options);
  const weightSizes = new Map<string, number>();
  const quantizedWeights = new Set<string>();
  const quantizedNodes: string[] = [];
  const floatNodes: WeightOnlyResult['floatNodes'] = [];

  for (const node of graph.node) {
    if (!isWeightOp(node)) continue;
    const b = graph.initializer.find((t) => t.name === node.input[1] && t.dataType === ELEMENT_TYPE.FLOAT);
    if (b) weightSizes.set(b.name, elementCount(b) * 4);
    const plan = keepFloat.has(node.name) ? 'kept float by the keepFloat option' : planNode(graph, node);
    if (typeof plan === 'string') {
      floatNodes.push({ node: nodeLabel(node), reason: plan });
      continue;
    }
    node.input[1] = weights.get(plan);
    quantizedWeights.add(plan.weight.name);
    quantizedNodes.push(nodeLabel(node));
  }

  if (quantizedNodes.length > 0) {
    // The dequantizing nodes read initializers only, so placing them first keeps the graph sorted.
    graph.node = [...weights.nodes, ...graph.node];
    graph.initializer.push(...weights.initializers);
    dropUnreadInitializers(graph, quantizedWeights);
    checkTopology(graph, 'output', action);
  }
  const weightBytes = [...weightSizes.values()].reduce((a, b) => a + b, 0);
  const quantizedWeightBytes = [...quantizedWeights].reduce((a, name) => a + weightSizes.get(name)!, 0);
  return { model, quantizedNodes, floatNodes, weightBytes, quantizedWeightBytes, quantizedWeightShare: weightBytes > 0 ? quantizedWeightBytes / weightBytes : 0 };
}
