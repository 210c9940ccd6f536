import {
  ELEMENT_TYPE,
  float16BitsToFloat32,
  float16Tensor,
  float32ToFloat16Bits,
  floatTensor,
  hasInlineData,
  makeNode,
  nameAllocator,
  readFloatTensor,
  subgraphReads,
  type GraphProto,
  type NodeProto,
  type TensorProto,
} from '@edgefleet/shared/onnx';

/**
 * Small graph edits every transform needs: initializers of the integer types shared's builder has
 * no constructor for, the clean-up after rewiring (initializers and value_info nothing uses), and
 * the lookups the transforms make before they rewrite (attributes, constants, the output layer).
 */

/** An int attribute's value, or `fallback` when the node does not set it. */
export function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : fallback;
}

/** A float attribute's value, or `fallback` when the node does not set it. */
export function floatAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? a.f : fallback;
}

/** The named initializer when it is float32 with its data in the model, else undefined. */
export function constantFloat(graph: GraphProto, name: string | undefined): TensorProto | undefined {
  if (!name) return undefined;
  const t = graph.initializer.find((x) => x.name === name);
  return t && t.dataType === ELEMENT_TYPE.FLOAT && hasInlineData(t) ? t : undefined;
}

/**
 * The `isLayer` nodes reached walking back from the graph outputs without passing another `isLayer`
 * node: the output layer (the logits) of a network.
 */
export function outputLayerOf(graph: GraphProto, isLayer: (node: NodeProto) => boolean): Set<NodeProto> {
  const producer = new Map<string, NodeProto>();
  graph.node.forEach((n) => n.output.forEach((o) => producer.set(o, n)));
  const found = new Set<NodeProto>();
  const seen = new Set<NodeProto>();
  const pending = graph.output.map((o) => producer.get(o.name)).filter((n) => n !== undefined);
  for (let node = pending.pop(); node; node = pending.pop()) {
    if (seen.has(node)) continue;
    seen.add(node);
    if (isLayer(node)) found.add(node);
    else node.input.forEach((i) => producer.has(i) && pending.push(producer.get(i)!));
  }
  return found;
}

/** A tensor of any element type from raw little-endian bytes, made on a float tensor's message shell. */
function rawTensor(name: string, dims: readonly (number | bigint)[], dataType: number, bytes: Uint8Array<ArrayBuffer>): TensorProto {
  return { ...floatTensor(name, [], new Float32Array(0)), dims: dims.map((d) => BigInt(d)), dataType, rawData: bytes };
}

export const int8Tensor = (name: string, dims: readonly (number | bigint)[], v: Int8Array<ArrayBuffer>): TensorProto =>
  rawTensor(name, dims, ELEMENT_TYPE.INT8, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
export const uint8Tensor = (name: string, dims: readonly (number | bigint)[], v: Uint8Array<ArrayBuffer>): TensorProto =>
  rawTensor(name, dims, ELEMENT_TYPE.UINT8, v);
export const int32Tensor = (name: string, dims: readonly (number | bigint)[], v: Int32Array<ArrayBuffer>): TensorProto =>
  rawTensor(name, dims, ELEMENT_TYPE.INT32, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));

/** Every name the graph reads: node inputs, subgraph captures and graph outputs. */
export function readNames(graph: GraphProto): Set<string> {
  const read = new Set<string>(graph.output.map((o) => o.name));
  for (const node of graph.node) {
    node.input.forEach((x) => x !== '' && read.add(x));
    subgraphReads(node).forEach((x) => read.add(x));
  }
  return read;
}

/**
 * Removes the initializers among `candidates` (all of them when omitted) that nothing reads any
 * more, with their graph input entries (older exporters list initializers as inputs). Returns the
 * removed names.
 */
export function dropUnreadInitializers(graph: GraphProto, candidates?: ReadonlySet<string>): string[] {
  const read = readNames(graph);
  const unread = new Set(graph.initializer.filter((t) => !read.has(t.name) && (!candidates || candidates.has(t.name))).map((t) => t.name));
  graph.initializer = graph.initializer.filter((t) => !unread.has(t.name));
  graph.input = graph.input.filter((i) => !unread.has(i.name));
  return [...unread];
}

/** Drops value_info entries for tensors no input, initializer or node defines any more (renamed or removed). */
export function dropStaleValueInfo(graph: GraphProto): void {
  const defined = new Set<string>([...graph.input.map((i) => i.name), ...graph.initializer.map((t) => t.name), ...graph.node.flatMap((n) => n.output)]);
  graph.valueInfo = graph.valueInfo.filter((v) => defined.has(v.name));
}

/**
 * Readers (op type, input position) whose float32 constant parameter an int8 profile may store as
 * float16 + Cast(to=FLOAT): each reads an initializer-only chain onnxruntime constant-folds at session
 * creation, so the running graph is float32 again and no fusion sees the Cast. Q/DQ and *Integer
 * inputs are not here: their scales must stay what the int8 arithmetic uses.
 */
export const FLOAT16_PARAMETER_READERS: ReadonlySet<string> = new Set(['Add:0', 'Add:1', 'Mul:0', 'Mul:1', 'LayerNormalization:1', 'LayerNormalization:2', 'Gemm:2']);

/**
 * Fewer elements than this stay float32: a Cast node and a second tensor name cost about as many
 * bytes (~40–60) as float16 saves on a few values (2 bytes each).
 */
const MIN_FLOAT16_PARAMETER_ELEMENTS = 64;

/**
 * Whether float16 keeps these values: every one finite, within ±65504, and its float16 rounding
 * off by at most 2^-11 relative (half precision's own step) or, for values under float16's
 * smallest normal 2^-14, by at most 2^-25 absolute. A parameter that fails stays float32.
 */
export function survivesFloat16(values: Float32Array): boolean {
  const halves = float16BitsToFloat32(float32ToFloat16Bits(values));
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v) || Math.abs(v) > 65504) return false;
    if (Math.abs(halves[i]! - v) > Math.max(Math.abs(v) * 2 ** -11, 2 ** -25)) return false;
  }
  return true;
}

/**
 * int8 profiles only (fp32 stays float32): float32 parameter initializers that only
 * FLOAT16_PARAMETER_READERS read — LayerNormalization scale/bias, biases added after a product,
 * Gemm's C, the per-channel scales of weight-only int8 — stored as float16 and read through
 * Cast(to=FLOAT), when survivesFloat16 holds. The Cast's output keeps the parameter's own name, so
 * its readers are untouched and the user's tensor names stay; the float16 copy and the Cast are
 * named h<n>_… (a long exporter name repeated would eat the saving). A tensor a graph output, a graph
 * input entry or a subgraph also names stays. Cast nodes go first (they read initializers only, so
 * the graph stays sorted). In place; returns the names converted.
 */
export function storeParametersAsFloat16(graph: GraphProto, allowedReaders: ReadonlySet<string> = FLOAT16_PARAMETER_READERS): string[] {
  const readers = new Map<string, string[]>();
  for (const node of graph.node) {
    node.input.forEach((x, i) => x !== '' && readers.set(x, [...(readers.get(x) ?? []), `${node.opType}:${i}`]));
  }
  const pinned = new Set([...graph.output.map((o) => o.name), ...graph.input.map((i) => i.name), ...graph.node.flatMap(subgraphReads)]);
  const fresh = nameAllocator(graph);
  const converted = new Set<string>();
  const casts: NodeProto[] = [];
  const halves: TensorProto[] = [];
  for (const t of graph.initializer) {
    if (t.dataType !== ELEMENT_TYPE.FLOAT || !hasInlineData(t) || pinned.has(t.name)) continue;
    const reads = readers.get(t.name) ?? [];
    if (reads.length === 0 || !reads.every((r) => allowedReaders.has(r))) continue;
    const values = readFloatTensor(t);
    if (values.length < MIN_FLOAT16_PARAMETER_ELEMENTS || !survivesFloat16(values)) continue;
    const key = `h${converted.size}`;
    const half = fresh(`${key}_float16`);
    halves.push(float16Tensor(half, t.dims, values));
    casts.push(makeNode('Cast', [half], [t.name], fresh(`${key}_Cast`), { to: { int: ELEMENT_TYPE.FLOAT } }));
    converted.add(t.name);
  }
  if (converted.size === 0) return [];
  graph.initializer = [...graph.initializer.filter((t) => !converted.has(t.name)), ...halves];
  graph.node = [...casts, ...graph.node];
  return [...converted];
}

/** The nodes reading each tensor (a node reading one tensor twice is listed once). */
export function consumersOf(graph: GraphProto): Map<string, NodeProto[]> {
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
export function pinnedNames(graph: GraphProto): Set<string> {
  return new Set([...graph.output.map((o) => o.name), ...graph.node.flatMap(subgraphReads)]);
}
