import {
  castNode,
  cloneModel,
  declaredElementTypes,
  ELEMENT_TYPE,
  floatTensor,
  makeNode,
  nameAllocator,
  readFloatTensor,
  requireGraph,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from '@edgefleet/shared/onnx';
import { checkTopology, isDefaultDomain, nodeLabel as label } from './graph-check.js';
import { constantFloat, dropUnreadInitializers, floatAttr, int8Tensor, intAttr, outputLayerOf, storeParametersAsFloat16 } from './graph-edit.js';
import { quantizeAlongAxis, quantizePerColumn, transpose } from './quant-math.js';
import { int8WeightOrReason, recordWeightSize, storeWeightsAsInt8, sumWeightBytes } from './weight-quant.js';

export interface Int8DynamicOptions {
  /**
   * Weights in [-63, 63] instead of [-127, 127], for x86 cores without VNNI, whose u8·s8 multiply-add
   * saturates; costs accuracy, so only the planner's choice for such targets.
   */
  readonly reduceRange?: boolean;
  /** Names of MatMul/Gemm/Conv nodes to leave in float32, weights included. */
  readonly keepFloat?: readonly string[];
  /**
   * Quantize the output layer too: the MatMul/Gemm nodes a graph output depends on with no other
   * MatMul/Gemm in between. Off by default: measured here, a float output layer costs little time
   * and keeps top-1 agreement clearly higher. Its weight is then stored as float16.
   */
  readonly quantizeOutputLayer?: boolean;
  /**
   * Conv computing in int8 too, as DynamicQuantizeLinear → ConvInteger → Cast → Mul(scales) [→ Add
   * bias]. Off by default, because it does not pay: onnxruntime's CPU ConvInteger ran the PyTorch CNN
   * and the 3x128x128 conv net 6.5–9x slower than fp32 Conv here (bench/compression.mjs). Without it a
   * Conv computes in float32 from int8-stored weights (widened once at load), so the file is as small.
   */
  readonly conv?: boolean;
}

export interface Int8DynamicResult {
  readonly model: ModelProto;
  /** Names (or op types when unnamed) of the MatMul/Gemm/Conv nodes now computing in int8. */
  readonly quantizedNodes: string[];
  /** MatMul/Gemm/Conv nodes left computing in float32, and why. */
  readonly skippedNodes: { node: string; reason: string }[];
  /**
   * Skipped nodes whose constant weight is nevertheless stored as int8, read through Cast + Mul that
   * onnxruntime folds at session creation: they compute in float32 with int8-rounded weights.
   */
  readonly weightOnlyNodes: string[];
  /** The output layer when it computes in float: its weight stored as float16 (+ Cast folded at load). */
  readonly float16WeightNodes: string[];
  /** float32 bytes of the distinct constant weights MatMul/Gemm/Conv nodes read, and of those now stored as int8 (weightOnlyNodes' included). */
  readonly weightBytes: number;
  readonly quantizedWeightBytes: number;
  /** quantizedWeightBytes / weightBytes, 0 when there are no such weights. */
  readonly quantizedShare: number;
}

/** What one MatMul/Gemm node needs to run as DynamicQuantizeLinear → MatMulInteger → scale. */
interface Plan {
  readonly node: NodeProto;
  readonly activation: string;
  readonly weight: TensorProto;
  /** Gemm transB=1 stores the weight as [N, K]; MatMulInteger wants [K, N]. */
  readonly transposed: boolean;
  readonly alpha: number;
  /** The bias to add after scaling (Gemm's C), with Gemm's beta when it is not 1. */
  readonly bias?: { name: string; beta: number };
}

/** DynamicQuantizeLinear's first opset (MatMulInteger's is 10). */
const MIN_OPSET = 11;


/** The float constant weight a node reads as B, or why it has none we can quantize. */
const constantWeight = (graph: GraphProto, node: NodeProto): TensorProto | string =>
  int8WeightOrReason(graph, node, 'B', (rank, name) => (rank !== 2 ? `B "${name}" has ${rank} dimensions; per-column int8 needs a 2-D weight` : undefined));

/** A plan for a MatMul/Gemm node, or the reason it stays float32. */
function planNode(graph: GraphProto, node: NodeProto, types: ReadonlyMap<string, number>): Plan | string {
  const activation = node.input[0] ?? '';
  const activationType = types.get(activation);
  if (activationType !== undefined && activationType !== ELEMENT_TYPE.FLOAT) return `A "${activation}" is not float32`;
  const weight = constantWeight(graph, node);
  if (typeof weight === 'string') return weight;
  if (node.opType === 'MatMul') return { node, activation, weight, transposed: false, alpha: 1 };

  if (intAttr(node, 'transA', 0) !== 0) return 'Gemm with transA=1';
  const alpha = floatAttr(node, 'alpha', 1);
  const beta = floatAttr(node, 'beta', 1);
  const transposed = intAttr(node, 'transB', 0) !== 0;
  const c = node.input[2] ?? '';
  if (c === '') return { node, activation, weight, transposed, alpha };
  const constantC = constantFloat(graph, c) !== undefined;
  if (beta !== 1 && !constantC) return `Gemm with beta=${beta} and a computed C`;
  return { node, activation, weight, transposed, alpha, bias: { name: c, beta } };
}

const isMatMulOrGemm = (node: NodeProto): boolean => isDefaultDomain(node) && (node.opType === 'MatMul' || node.opType === 'Gemm');
const isConv = (node: NodeProto): boolean => isDefaultDomain(node) && node.opType === 'Conv';
const isWeightLayer = (node: NodeProto): boolean => isMatMulOrGemm(node) || isConv(node);

/** Per-weight int8 initializers, made once however many nodes share the weight. */
class WeightStore {
  private readonly made = new Map<string, { values: string; scales: string; zeroPoints: string }>();
  readonly added: TensorProto[] = [];

  constructor(
    private readonly fresh: (base: string) => string,
    private readonly limit: number,
  ) {}

  get(plan: Plan): { values: string; scales: string; zeroPoints: string } {
    const key = `${plan.weight.name}\0${plan.transposed}\0${plan.alpha}`;
    const existing = this.made.get(key);
    if (existing) return existing;
    const [d0, d1] = plan.weight.dims.map(Number) as [number, number];
    const [k, n] = plan.transposed ? [d1, d0] : [d0, d1];
    const float = readFloatTensor(plan.weight);
    // float16-valued scales (rounded up before quantizing) when nothing multiplies them afterwards:
    // storeParametersAsFloat16 then stores them in 16 bits losing nothing.
    const { values, scales } = quantizePerColumn(plan.transposed ? transpose(float, d0, d1) : float, k, n, this.limit, plan.alpha === 1);
    // Gemm's alpha multiplies the product, so it belongs in the dequantization scale.
    if (plan.alpha !== 1) scales.forEach((s, i) => (scales[i] = s * plan.alpha));
    const names = {
      values: this.fresh(`${plan.weight.name}_quantized`),
      scales: this.fresh(`${plan.weight.name}_scale`),
      zeroPoints: this.fresh(`${plan.weight.name}_zero_point`),
    };
    this.added.push(
      int8Tensor(names.values, [BigInt(k), BigInt(n)], values),
      floatTensor(names.scales, [n], scales),
      int8Tensor(names.zeroPoints, [BigInt(n)], new Int8Array(n)),
    );
    this.made.set(key, names);
    return names;
  }
}

/**
 * The nodes replacing one MatMul/Gemm, in the shape onnxruntime fuses into DynamicQuantizeMatMul:
 * MatMulInteger → Cast → Mul(activation scale × weight scales) [→ Add bias]. The output keeps the
 * node's name, so its readers (a MatMul's following Add included) are untouched. The tensors and
 * nodes in between are named i<n>_… (`key`), not after the node: exporter names run to 40–60
 * characters, and repeated in every name and reference they were ~0.5 % of the PyTorch fixtures' fp32
 * size (activations quantized at run time are a<n>_… for the same reason).
 */
function replacement(plan: Plan, key: string, quantizedActivation: readonly string[], weight: ReturnType<WeightStore['get']>, fresh: (base: string) => string, biasName?: string): NodeProto[] {
  const out = plan.node.output[0]!;
  const [xq, xScale, xZero] = quantizedActivation as [string, string, string];
  const acc = fresh(`${key}_int32`);
  const accFloat = fresh(`${key}_int32_float`);
  const scale = fresh(`${key}_scale`);
  const scaled = biasName ? fresh(`${key}_no_bias`) : out;
  const nodes = [
    makeNode('MatMulInteger', [xq, weight.values, xZero, weight.zeroPoints], [acc], fresh(`${key}_MatMulInteger`)),
    makeNode('Mul', [xScale, weight.scales], [scale], fresh(`${key}_scale_Mul`)),
    castNode(acc, accFloat, ELEMENT_TYPE.FLOAT),
    makeNode('Mul', [accFloat, scale], [scaled], fresh(`${key}_dequantize`)),
  ];
  if (biasName) nodes.push(makeNode('Add', [scaled, biasName], [out], fresh(`${key}_bias`)));
  return nodes;
}

/** Gemm's constant C times beta, as a new initializer: the Add after the int8 product has no beta. */
function betaScaledBias(graph: GraphProto, bias: { name: string; beta: number }, fresh: (base: string) => string): TensorProto {
  const c = graph.initializer.find((t) => t.name === bias.name)!;
  return floatTensor(fresh(`${c.name}_beta`), c.dims.map(Number), readFloatTensor(c).map((v) => v * bias.beta));
}

/** What one Conv needs to run as DynamicQuantizeLinear → ConvInteger → scale [→ bias]. */
interface ConvPlan {
  readonly node: NodeProto;
  readonly activation: string;
  readonly weight: TensorProto;
  readonly bias?: TensorProto;
}

/** A plan for a Conv node, or the reason it stays float32. */
function planConv(graph: GraphProto, node: NodeProto, types: ReadonlyMap<string, number>): ConvPlan | string {
  const activation = node.input[0] ?? '';
  const activationType = types.get(activation);
  if (activationType !== undefined && activationType !== ELEMENT_TYPE.FLOAT) return `X "${activation}" is not float32`;
  const weight = int8WeightOrReason(graph, node, 'W', (rank, name) => (rank < 3 ? `W "${name}" has ${rank} dimensions; a Conv weight has at least 3` : undefined));
  if (typeof weight === 'string') return weight;
  if (node.output.length !== 1) return 'more than one output';
  const biasName = node.input[2] ?? '';
  if (biasName === '') return { node, activation, weight };
  const bias = constantFloat(graph, biasName);
  if (!bias || bias.dims.length !== 1 || bias.dims[0] !== weight.dims[0]) return `B "${biasName}" is not a float initializer with one value per output channel`;
  return { node, activation, weight, bias };
}

/**
 * The nodes replacing one Conv: ConvInteger on the run-time quantized input and symmetric int8
 * weights (one zero point 0 for the whole tensor, which is all onnxruntime's ConvInteger accepts;
 * the per-output-channel scales go into the Mul after it), Cast, Mul by input scale × channel
 * scales shaped [M, 1, …] to broadcast over [N, M, spatial…], then the bias (also [M, 1, …]).
 * The output keeps the Conv's name. Weights shared by several Convs are quantized once.
 */
function convReplacement(plan: ConvPlan, key: string, quantizedActivation: readonly string[], fresh: (base: string) => string, made: Map<string, string[]>, added: TensorProto[]): NodeProto[] {
  const dims = plan.weight.dims.map(Number);
  const channelShape = [dims[0]!, ...dims.slice(2).map(() => 1)];
  let weight = made.get(plan.weight.name);
  if (!weight) {
    const { q, scales } = quantizeAlongAxis(readFloatTensor(plan.weight), dims, 0);
    weight = [fresh(`${plan.weight.name}_quantized`), fresh(`${plan.weight.name}_scale`), fresh(`${plan.weight.name}_zero_point`)];
    added.push(int8Tensor(weight[0]!, dims, q), floatTensor(weight[1]!, channelShape, scales), int8Tensor(weight[2]!, [], new Int8Array(1)));
    made.set(plan.weight.name, weight);
  }
  const [wq, wScale, wZero] = weight as [string, string, string];
  const [xq, xScale, xZero] = quantizedActivation as [string, string, string];
  const out = plan.node.output[0]!;
  const acc = fresh(`${key}_int32`);
  const accFloat = fresh(`${key}_int32_float`);
  const scale = fresh(`${key}_scale`);
  const scaled = plan.bias ? fresh(`${key}_no_bias`) : out;
  const convInteger = makeNode('ConvInteger', [xq, wq, xZero, wZero], [acc], fresh(`${key}_ConvInteger`));
  convInteger.attribute = plan.node.attribute.map((a) => ({ ...a }));
  const nodes = [
    convInteger,
    makeNode('Mul', [xScale, wScale], [scale], fresh(`${key}_scale_Mul`)),
    castNode(acc, accFloat, ELEMENT_TYPE.FLOAT),
    makeNode('Mul', [accFloat, scale], [scaled], fresh(`${key}_dequantize`)),
  ];
  if (plan.bias) {
    const bias = fresh(`${plan.bias.name}_channels`);
    added.push(floatTensor(bias, channelShape, readFloatTensor(plan.bias)));
    nodes.push(makeNode('Add', [scaled, bias], [out], fresh(`${key}_bias`)));
  }
  return nodes;
}

/**
 * int8-dynamic variant of a float32 model: each MatMul/Gemm with a constant 2-D float weight gets
 * symmetric per-output-column int8 weights and quantizes its activation at run time
 * (DynamicQuantizeLinear, u8 activations, shared by every quantized node reading the same tensor).
 * Outputs stay float32, so nothing is requantized after a node, and the output layer computes in
 * float unless asked otherwise. Nodes it cannot handle compute as they did, with the reason in the
 * result; their constant weights (keepFloat's excepted) are stored as int8 all the same, the
 * float output layer's as float16.
 */
export function quantizeInt8Dynamic(source: ModelProto, options: Int8DynamicOptions = {}): Int8DynamicResult {
  const model = cloneModel(source);
  const graph = requireGraph(model);
  checkTopology(graph, 'input', 'quantize to int8');
  const types = declaredElementTypes(graph);
  const keepFloat = new Set(options.keepFloat ?? []);
  const floatOutputLayer = options.quantizeOutputLayer ? new Set<NodeProto>() : outputLayerOf(graph, isWeightLayer);
  const opset = Number(model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0);
  const fresh = nameAllocator(graph);
  const weights = new WeightStore(fresh, options.reduceRange ? 63 : 127);
  const quantizedActivations = new Map<string, string[]>();
  const weightSizes = new Map<string, number>();
  const quantizedWeights = new Set<string>();
  const quantizedNodes: string[] = [];
  const skippedNodes: Int8DynamicResult['skippedNodes'] = [];
  const biases: TensorProto[] = [];
  const replacedBiases = new Set<string>();
  const nodes: NodeProto[] = [];

  const convWeights = new Map<string, string[]>();
  const convAdded: TensorProto[] = [];
  const quantizeActivation = (name: string): string[] => {
    let activation = quantizedActivations.get(name);
    if (!activation) {
      const key = `a${quantizedActivations.size}`;
      activation = ['quantized', 'scale', 'zero_point'].map((s) => fresh(`${key}_${s}`));
      quantizedActivations.set(name, activation);
      nodes.push(makeNode('DynamicQuantizeLinear', [name], activation, fresh(`${key}_DynamicQuantizeLinear`)));
    }
    return activation;
  };

  for (const node of graph.node) {
    if (!isWeightLayer(node)) {
      nodes.push(node);
      continue;
    }
    recordWeightSize(graph, node, weightSizes);
    let plan: Plan | ConvPlan | string;
    if (opset < MIN_OPSET) plan = `the model imports opset ${opset}; DynamicQuantizeLinear needs ${MIN_OPSET}`;
    else if (keepFloat.has(node.name)) plan = 'kept float by the keepFloat option';
    else if (floatOutputLayer.has(node)) plan = 'output layer, kept float (quantizeOutputLayer is off)';
    else if (isConv(node) && options.conv !== true) plan = 'Conv computes in float from int8-stored weights (ConvInteger is slower here; the conv option is off)';
    else plan = isConv(node) ? planConv(graph, node, types) : planNode(graph, node, types);
    if (typeof plan === 'string') {
      skippedNodes.push({ node: label(node), reason: plan });
      nodes.push(node);
      continue;
    }
    const activation = quantizeActivation(plan.activation);
    if (!('transposed' in plan)) {
      nodes.push(...convReplacement(plan, `i${quantizedNodes.length}`, activation, fresh, convWeights, convAdded));
      quantizedWeights.add(plan.weight.name);
      if (plan.bias) replacedBiases.add(plan.bias.name);
      quantizedNodes.push(label(plan.node));
      continue;
    }
    const scaled = plan.bias && plan.bias.beta !== 1 ? betaScaledBias(graph, plan.bias, fresh) : undefined;
    if (scaled) {
      biases.push(scaled);
      replacedBiases.add(plan.bias!.name);
    }
    const biasName = scaled?.name ?? plan.bias?.name;
    nodes.push(...replacement(plan, `i${quantizedNodes.length}`, activation, weights.get(plan), fresh, biasName));
    quantizedWeights.add(plan.weight.name);
    quantizedNodes.push(label(plan.node));
  }

  if (quantizedNodes.length > 0) {
    graph.node = nodes;
    graph.initializer.push(...weights.added, ...convAdded, ...biases);
    dropUnreadInitializers(graph, new Set([...quantizedWeights, ...replacedBiases]));
  }
  // The nodes left computing in float store their weight as int8 all the same: weight rounding only,
  // no activation requantized. The output layer (a float32 head was ~1 % of the PyTorch fixtures'
  // files) stores float16: int8 there lowered batch-1 top-1 agreement on held-out fixture data
  // (MLP 0.995 → 0.993, CNN 0.999 → 0.996, encoder 0.994 → 0.990), float16 left it as it was.
  const stored = storeWeightsAsInt8(graph, { keepFloat: options.keepFloat, float16: floatOutputLayer });
  // Weight scales, biases and LayerNormalization parameters in 16 bits too, folded back at load.
  // (A model with nothing quantized stays as it was.)
  if (quantizedNodes.length + stored.quantizedNodes.length > 0) {
    storeParametersAsFloat16(graph);
    checkTopology(graph, 'output', 'quantize to int8');
  }
  const weightBytes = sumWeightBytes(weightSizes, weightSizes.keys());
  const quantizedWeightBytes = sumWeightBytes(weightSizes, [...quantizedWeights, ...stored.quantizedWeights]);
  return {
    model,
    quantizedNodes,
    skippedNodes,
    weightOnlyNodes: stored.quantizedNodes,
    float16WeightNodes: stored.float16Nodes,
    weightBytes,
    quantizedWeightBytes,
    quantizedShare: weightBytes > 0 ? quantizedWeightBytes / weightBytes : 0,
  };
}
