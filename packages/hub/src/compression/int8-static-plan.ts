import {
  readFloatTensor,
  type GraphProto,
  type NodeProto,
  type TensorProto,
} from '@edgefleet/shared/onnx';
import { isDefaultDomain, nodeLabel as label } from './graph-check.js';
import { constantFloat, consumersOf, floatAttr, intAttr, pinnedNames } from './graph-edit.js';

/** Which Conv/MatMul/Gemm nodes int8-static quantizes (with the tensors to calibrate), and why the others stay float. */

export const QUANTIZABLE = new Set(['Conv', 'MatMul', 'Gemm']);
export const MIN_OPSET = 13; // per-channel DequantizeLinear (axis) arrived in opset 13
const LOGITS_REASON = 'it produces the model output (logits stay float)';

export interface Candidate {
  readonly node: NodeProto;
  readonly activation: string;
  readonly weight: TensorProto;
  /** Weight axis holding the output channels: one scale per channel along it. */
  readonly channelAxis: number;
  readonly bias?: TensorProto;
  /** The tensor whose range the output is quantized with, and the Relu/Clip folded into it, if any. */
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
  if (feedsOutputDirectly(node.output[0]!, graph, consumers)) return LOGITS_REASON;
  const out = node.output[0]!;
  const readers = consumers.get(out) ?? [];
  const clamp = readers.length === 1 && !pinned.has(out) && absorbable(readers[0]!, graph) ? readers[0] : undefined;
  return { node, activation, weight, channelAxis, bias, output: clamp ? clamp.output[0]! : out, absorbed: clamp };
}

/**
 * A Relu, or a Clip whose bounds hold 0 (Relu6 and the like), can be dropped when its input is
 * quantized with the range of its output: the range starts at the clamp's bound (uint8/int8
 * saturation does the clamping) and 0 stays exact. Clip bounds are attributes before opset 11 and
 * constant inputs after; a computed bound keeps the Clip.
 */
function absorbable(node: NodeProto, graph: GraphProto): boolean {
  if (!isDefaultDomain(node) || node.output.length !== 1) return false;
  if (node.opType === 'Relu') return true;
  if (node.opType !== 'Clip') return false;
  const bound = (index: number, attribute: string, fallback: number): number | undefined => {
    const name = node.input[index] ?? '';
    if (name === '') return floatAttr(node, attribute, fallback);
    const t = constantFloat(graph, name);
    return t && t.dims.length === 0 ? readFloatTensor(t)[0] : undefined;
  };
  const min = bound(1, 'min', -Infinity);
  const max = bound(2, 'max', Infinity);
  return min !== undefined && max !== undefined && min <= 0 && max >= 0;
}

/** The Conv/MatMul/Gemm nodes the transform can quantize, and why each other one stays float. */
export function plan(graph: GraphProto, keepFloat: ReadonlySet<string>): { candidates: Candidate[]; floatNodes: { node: string; reason: string }[]; logits: Set<NodeProto> } {
  const consumers = consumersOf(graph);
  const pinned = pinnedNames(graph);
  const candidates: Candidate[] = [];
  const floatNodes: { node: string; reason: string }[] = [];
  const logits = new Set<NodeProto>();
  for (const node of graph.node) {
    if (!QUANTIZABLE.has(node.opType) || !isDefaultDomain(node)) continue;
    const c = keepFloat.has(node.name) ? 'kept float by the keepFloat option' : candidateOrReason(node, graph, consumers, pinned);
    if (c === LOGITS_REASON) logits.add(node);
    if (typeof c === 'string') floatNodes.push({ node: label(node), reason: c });
    else candidates.push(c);
  }
  return { candidates, floatNodes, logits };
}
