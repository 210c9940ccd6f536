import { EdgefleetError } from '@edgefleet/shared';
import type { GraphProto } from '@edgefleet/shared/onnx';

/**
 * Throws when a node reads a tensor nothing before it defines: on the input model the graph is broken
 * or unsorted (INVALID_MODEL); on a transform's output it is the transform's own bug (INTERNAL), and a
 * model that onnxruntime would refuse is never handed on.
 */
export function checkTopology(graph: GraphProto, stage: 'input' | 'output', action: string): void {
  const defined = new Set<string>([...graph.input.map((i) => i.name), ...graph.initializer.map((t) => t.name)]);
  for (const node of graph.node) {
    for (const name of node.input) {
      if (name !== '' && !defined.has(name)) {
        throw new EdgefleetError(
          stage === 'input' ? 'INVALID_MODEL' : 'INTERNAL',
          `cannot ${action}: node "${node.name || node.opType}" reads "${name}", which no graph input, initializer or earlier node defines (${stage} model)`,
        );
      }
    }
    node.output.forEach((o) => defined.add(o));
  }
}
