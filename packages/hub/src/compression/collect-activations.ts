import { cloneModel, encodeModel, requireGraph, type ModelProto } from '@edgefleet/shared/onnx';

/** One calibration sample: a float32 tensor per model input. */
export type CalibrationFeeds = Readonly<Record<string, { readonly data: Float32Array; readonly dims: readonly number[] }>>;

/**
 * Runs a model (bytes) on one sample and returns the requested outputs as float32. Injected so this
 * module does no inference itself: the hub passes an onnxruntime-node session, tests the same.
 */
export type RunModel = (model: Uint8Array, feeds: CalibrationFeeds, outputs: readonly string[]) => Promise<Record<string, Float32Array>>;

/**
 * A copy of the model that also outputs the given intermediate tensors as float32 of unknown shape,
 * so one run yields every activation calibration needs.
 */
export function withExtraOutputs(source: ModelProto, tensors: readonly string[]): ModelProto {
  const model = cloneModel(source);
  const graph = requireGraph(model);
  const template = graph.output.find((o) => o.type?.value.case === 'tensorType');
  if (!template?.type || template.type.value.case !== 'tensorType') {
    throw new Error('cannot add calibration outputs: the model has no tensor output to copy the type from');
  }
  const tensorType = template.type.value.value;
  const existing = new Set(graph.output.map((o) => o.name));
  for (const name of tensors) {
    if (existing.has(name)) continue;
    // Element type float with no shape: onnxruntime infers it, and any shape is accepted.
    graph.output.push({ ...template, name, docString: '', type: { ...template.type, value: { case: 'tensorType', value: { ...tensorType, shape: undefined } } } });
  }
  return model;
}

/** Runs every sample through the augmented model and gathers each tensor's values, per sample. */
export async function collectActivations(
  model: ModelProto,
  tensors: readonly string[],
  samples: readonly CalibrationFeeds[],
  run: RunModel,
): Promise<Map<string, Float32Array[]>> {
  const bytes = encodeModel(withExtraOutputs(model, tensors));
  const activations = new Map<string, Float32Array[]>(tensors.map((t) => [t, []]));
  const inputs = new Set(requireGraph(model).input.map((i) => i.name));
  for (const sample of samples) {
    const outputs = await run(bytes, sample, tensors.filter((t) => !inputs.has(t)));
    for (const name of tensors) {
      const values = inputs.has(name) ? sample[name]?.data : outputs[name];
      if (!values) throw new Error(`calibration run produced no values for tensor "${name}"`);
      activations.get(name)!.push(values);
    }
  }
  return activations;
}
