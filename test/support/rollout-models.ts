import { buildMlp, encodeModel, floatTensor, GraphBuilder } from '@edgefleet/shared/onnx';

/**
 * Models for the rollout tests. The "index" pair shares one signature — idx INT64[1,4] → value FP32[1,4] —
 * and agrees on every index 0..15, so both pass the hub's golden check (its integer inputs are 0..9):
 * the lookup version fails only on real inputs outside its table, which is what a bad model that
 * passes upload looks like.
 */
export const INDEX_MODEL = { name: 'idx', input: 'idx', output: 'value', shape: [1, 4] } as const;

/** value = float(idx): any index works. */
export function castIndexModel(): Uint8Array {
  const g = new GraphBuilder(INDEX_MODEL.name);
  const idx = g.input(INDEX_MODEL.input, 'INT64', INDEX_MODEL.shape);
  g.node('Cast', [idx], { to: 1 }, INDEX_MODEL.output);
  g.output(INDEX_MODEL.output, 'FP32', INDEX_MODEL.shape);
  return encodeModel(g.build());
}

/** value = table[idx] with table[i] = i for i < 16: the same answers as the cast model, and an error for idx ≥ 16. */
export function lookupIndexModel(): Uint8Array {
  const g = new GraphBuilder(INDEX_MODEL.name);
  const idx = g.input(INDEX_MODEL.input, 'INT64', INDEX_MODEL.shape);
  const table = g.initializer(floatTensor('table', [16], Float32Array.from({ length: 16 }, (_, i) => i)));
  g.node('Gather', [table, idx], { axis: 0 }, INDEX_MODEL.output);
  g.output(INDEX_MODEL.output, 'FP32', INDEX_MODEL.shape);
  return encodeModel(g.build());
}

/** input FP32[batch,8] → probs FP32[batch,4]; `seed` makes each version's weights differ. */
export const SERVING_MODEL = { name: 'svc', input: 'input', output: 'probs', features: 8 } as const;

export function servingModel(seed: number): Uint8Array {
  return buildMlp({ name: SERVING_MODEL.name, inputSize: SERVING_MODEL.features, hidden: [16], outputSize: 4, seed });
}

/**
 * About 1 MB of weights, so that a throttled download takes seconds and a hub can be killed while
 * devices are still downloading.
 */
export const BULKY_MODEL = { name: 'bulky', input: 'input', features: 256 } as const;

export function bulkyModel(seed: number): Uint8Array {
  return buildMlp({ name: BULKY_MODEL.name, inputSize: BULKY_MODEL.features, hidden: [512], outputSize: 256, seed });
}
