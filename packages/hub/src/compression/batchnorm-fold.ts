import {
  floatTensor,
  readFloatTensor,
  type GraphProto,
  type NodeProto,
} from '@edgefleet/shared/onnx';
import { isDefaultDomain, nodeLabel as label } from './graph-check.js';
import { constantFloat, consumersOf, floatAttr, intAttr, pinnedNames } from './graph-edit.js';

/**
 * Folds a BatchNormalization (inference form) that is a Conv's only consumer into the Conv's weights
 * and bias; the Conv then writes the BatchNormalization's output. New initializers, so a weight
 * another node shares is left as it was.
 */
export function foldBatchNorms(graph: GraphProto, fresh: (base: string) => string): number {
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
