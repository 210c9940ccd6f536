import { EdgefleetError } from '@edgefleet/shared';
import type { GraphProto, NodeProto } from '@edgefleet/shared/onnx';

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
          `cannot ${action}: node "${nodeLabel(node)}" reads "${name}", which no graph input, initializer or earlier node defines (${stage} model)`,
        );
      }
    }
    node.output.forEach((o) => defined.add(o));
  }
}

/** An operator of the standard ONNX domain (a transform leaves other domains' nodes alone). */
export const isDefaultDomain = (node: NodeProto): boolean => node.domain === '' || node.domain === 'ai.onnx';

/** How messages and reports name a node: its name, or its op type when it has none. */
export const nodeLabel = (node: NodeProto): string => node.name || node.opType;
