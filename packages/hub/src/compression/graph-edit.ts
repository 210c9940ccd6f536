import {
  ELEMENT_TYPE,
  floatTensor,
  hasInlineData,
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
