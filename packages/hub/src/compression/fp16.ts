import {
  castNode,
  cloneModel,
  declaredElementTypes,
  ELEMENT_TYPE,
  float16Tensor,
  hasInlineData,
  nameAllocator,
  readFloatTensor,
  requireGraph,
  subgraphReads,
  type GraphProto,
  type ModelProto,
  type NodeProto,
} from '@edgefleet/shared/onnx';
import { checkTopology, isDefaultDomain } from './graph-check.js';
import { dropStaleValueInfo } from './graph-edit.js';

/**
 * An op this transform converts: which inputs and outputs are its float type T (the others, such
 * as Reshape's shape or MaxPool's indices, keep their type), and whether onnxruntime 1.30's CPU
 * provider has a float16 kernel for it (measured here by saving the optimized graph: without one
 * it wraps the op in its own Casts and computes in float32).
 */
interface Float16Op {
  readonly inputs: 'all' | readonly number[];
  readonly outputs: readonly number[];
  readonly cpuKernel: boolean;
}

const elementwise: Float16Op = { inputs: 'all', outputs: [0], cpuKernel: false };
const unary: Float16Op = { inputs: [0], outputs: [0], cpuKernel: false };
const dataMovement: Float16Op = { inputs: [0], outputs: [0], cpuKernel: true };

/**
 * The allow-list: every op here is converted and covered by compression-fp16.test.ts. Everything
 * else keeps computing in float32 behind Casts, whatever onnxruntime could do with it.
 */
export const FLOAT16_OPS: Readonly<Record<string, Float16Op>> = {
  Gemm: elementwise,
  MatMul: elementwise,
  Conv: elementwise,
  Add: elementwise,
  Sub: elementwise,
  Mul: elementwise,
  Div: elementwise,
  Relu: unary,
  LeakyRelu: unary,
  Sigmoid: unary,
  Tanh: unary,
  Softmax: unary,
  GlobalAveragePool: unary,
  AveragePool: unary,
  MaxPool: unary,
  Flatten: dataMovement,
  Reshape: dataMovement,
  Transpose: dataMovement,
  Concat: { inputs: 'all', outputs: [0], cpuKernel: true },
  Clip: { inputs: 'all', outputs: [0], cpuKernel: true },
  LayerNormalization: { inputs: [0, 1, 2], outputs: [0], cpuKernel: true },
};

export interface Fp16Options {
  /**
   * 'gpu' (default) computes every listed op in float16. 'cpu' stores the weights as float16 but
   * computes in float16 only where a CPU kernel exists and no Cast has to be added for it; the rest
   * reads the weights through Casts onnxruntime folds at load: half the file, float32's speed.
   */
  readonly target?: 'gpu' | 'cpu';
}

export interface Fp16Result {
  readonly model: ModelProto;
  /** Names (or op types when unnamed) of nodes now computing in float16. */
  readonly float16Nodes: string[];
  /** Op types left computing in float32 (not on the allow-list, or not worth it for the target). */
  readonly float32Ops: string[];
  readonly float16Initializers: number;
}


const listedOp = (node: NodeProto): Float16Op | undefined => (isDefaultDomain(node) ? FLOAT16_OPS[node.opType] : undefined);

function floatInputIndexes(node: NodeProto, op: Float16Op): number[] {
  const indexes = op.inputs === 'all' ? node.input.map((_, i) => i) : op.inputs;
  return indexes.filter((i) => (node.input[i] ?? '') !== '');
}

/**
 * Float initializers read by listed ops, stored as float16 even where the op stays float32 (target
 * 'cpu'): onnxruntime folds a Cast of an initializer at load, so the download shrinks for free.
 */
function weightsToHalve(graph: GraphProto): Set<string> {
  const readByListedOps = new Set<string>();
  for (const node of graph.node) {
    const op = listedOp(node);
    if (op) floatInputIndexes(node, op).forEach((i) => readByListedOps.add(node.input[i]!));
  }
  const names = new Set<string>();
  for (const t of graph.initializer) {
    if (t.dataType === ELEMENT_TYPE.FLOAT && hasInlineData(t) && readByListedOps.has(t.name)) names.add(t.name);
  }
  return names;
}

/**
 * Decides which nodes compute in float16, tracking which tensors are float32 as it walks the sorted
 * graph. For target 'cpu' a node with a float16 CPU kernel is chosen only when all its float inputs
 * already exist in float16 (halved weights, chosen nodes' outputs): a Cast added just to run one op
 * in float16 costs a CPU more than it saves.
 */
function chooseNodes(graph: GraphProto, target: 'gpu' | 'cpu', halvedWeights: ReadonlySet<string>): Set<NodeProto> {
  const types = declaredElementTypes(graph);
  const inHalf = new Set(halvedWeights);
  const chosen = new Set<NodeProto>();
  for (const node of graph.node) {
    const op = listedOp(node);
    if (op) {
      const floatInputs = floatInputIndexes(node, op).map((i) => node.input[i]!);
      const inputTypes = floatInputs.map((name) => types.get(name));
      // T inputs share one type, so one known float input makes them all float; anything else stays.
      const isFloat = inputTypes.includes(ELEMENT_TYPE.FLOAT) && inputTypes.every((t) => t === undefined || t === ELEMENT_TYPE.FLOAT);
      if (!isFloat) continue;
      const outputs = op.outputs.map((j) => node.output[j] ?? '').filter((o) => o !== '');
      outputs.forEach((o) => types.set(o, ELEMENT_TYPE.FLOAT));
      if (target === 'gpu' || (op.cpuKernel && floatInputs.every((name) => inHalf.has(name)))) {
        chosen.add(node);
        outputs.forEach((o) => inHalf.add(o));
      }
    } else if (node.opType === 'Cast' && isDefaultDomain(node)) {
      const to = node.attribute.find((a) => a.name === 'to');
      if (to && node.output[0]) types.set(node.output[0], Number(to.i));
    }
  }
  return chosen;
}

/** Tensors something reads as float32: an unconverted node, a subgraph, a graph output. */
function float32Readers(graph: GraphProto, chosen: ReadonlySet<NodeProto>): Set<string> {
  const names = new Set<string>(graph.output.map((o) => o.name));
  for (const node of graph.node) {
    const op = listedOp(node);
    const halfInputs = chosen.has(node) && op ? new Set(floatInputIndexes(node, op)) : new Set<number>();
    node.input.forEach((name, i) => name !== '' && !halfInputs.has(i) && names.add(name));
    subgraphReads(node).forEach((name) => names.add(name));
  }
  return names;
}

/**
 * Replaces the halved weights by float16 twins (and drops their graph input entries, which older
 * exporters write); returns the Casts that still make the float32 name for its float32 readers.
 */
function halveWeights(
  graph: GraphProto,
  names: ReadonlySet<string>,
  readsFloat32: ReadonlySet<string>,
  fresh: (base: string) => string,
  half: Map<string, string>,
): NodeProto[] {
  const casts: NodeProto[] = [];
  graph.initializer = graph.initializer.map((tensor) => {
    if (!names.has(tensor.name)) return tensor;
    const twin = fresh(`${tensor.name}_fp16`);
    half.set(tensor.name, twin);
    if (readsFloat32.has(tensor.name)) casts.push(castNode(twin, tensor.name, ELEMENT_TYPE.FLOAT));
    return float16Tensor(twin, tensor.dims, readFloatTensor(tensor));
  });
  graph.input = graph.input.filter((i) => !names.has(i.name));
  return casts;
}

/** Rewires a chosen node onto float16 twins; returns it with the Casts it needs before and after. */
function convertNode(
  node: NodeProto,
  op: Float16Op,
  readsFloat32: ReadonlySet<string>,
  fresh: (base: string) => string,
  half: Map<string, string>,
): NodeProto[] {
  const before: NodeProto[] = [];
  const after: NodeProto[] = [];
  for (const i of floatInputIndexes(node, op)) {
    const name = node.input[i]!;
    let twin = half.get(name);
    if (!twin) {
      twin = fresh(`${name}_fp16`);
      before.push(castNode(name, twin, ELEMENT_TYPE.FLOAT16));
      half.set(name, twin);
    }
    node.input[i] = twin;
  }
  for (const j of op.outputs) {
    const name = node.output[j];
    if (!name) continue;
    const twin = fresh(`${name}_fp16`);
    node.output[j] = twin;
    half.set(name, twin);
    if (readsFloat32.has(name)) after.push(castNode(twin, name, ELEMENT_TYPE.FLOAT));
  }
  return [...before, node, ...after];
}

/**
 * fp16 variant of a float32 model: float initializers read by listed ops become float16, listed
 * ops compute in float16, and every original tensor name keeps its original type — float16
 * values live under new names, with Casts where float32 and float16 parts meet. So the model's
 * inputs, outputs and value_info stay valid and any node the transform does not know stays as is.
 */
export function convertToFloat16(source: ModelProto, options: Fp16Options = {}): Fp16Result {
  const model = cloneModel(source);
  const graph = requireGraph(model);
  checkTopology(graph, 'input', 'convert to float16');
  const halvedWeights = weightsToHalve(graph);
  const chosen = chooseNodes(graph, options.target ?? 'gpu', halvedWeights);
  const readsFloat32 = float32Readers(graph, chosen);
  const fresh = nameAllocator(graph);
  const half = new Map<string, string>();

  const nodes = halveWeights(graph, halvedWeights, readsFloat32, fresh, half);
  for (const node of graph.node) {
    const op = listedOp(node);
    nodes.push(...(chosen.has(node) && op ? convertNode(node, op, readsFloat32, fresh, half) : [node]));
  }
  graph.node = nodes;

  // value_info of tensors that now exist only under their float16 name would describe nothing.
  dropStaleValueInfo(graph);
  checkTopology(graph, 'output', 'convert to float16');

  return {
    model,
    float16Nodes: [...chosen].map((n) => n.name || n.opType),
    float32Ops: [...new Set(nodes.filter((n) => !chosen.has(n) && n.opType !== 'Cast').map((n) => n.opType))],
    float16Initializers: halvedWeights.size,
  };
}
