import {
  addSample,
  baselineFromReference,
  createFeatureExtractor,
  emptySummary,
  extractionFeatureNames,
  extractionWidth,
  planExtraction,
  summaryBytes,
  type DriftBaseline,
  type ExtractTensor,
  type ReferenceColumn,
  type TensorSpec,
  type TypedTensor,
} from '@edgefleet/shared';

/**
 * A version's baseline from its reference samples (pure apart from `run`, the model): the model's
 * signature says how its tensors become features (extract.ts, the same code the agent tracks with),
 * the samples go through the fp32 model in small batches, every sample's input and output features
 * become one row of columns, and the columns become edges, categories and the reference summary.
 */

/** Samples per model run when every input's batch dimension is dynamic; one at a time otherwise. */
export const BASELINE_BATCH = 16;
/** Samples of the window whose summary size BaselineInfo.summaryBytes reports (the hub's evaluation minimum). */
export const WINDOW_SAMPLES = 500;

export interface BaselineResult {
  baseline: DriftBaseline;
  /** JSON bytes of a WINDOW_SAMPLES-sample window of the reference (rows repeated when the reference has fewer). */
  summaryBytes: number;
}

const asExtract = (t: TypedTensor): ExtractTensor => ({ name: t.name, dims: t.shape, data: t.data });

function slice(inputs: readonly TypedTensor[], start: number, end: number): TypedTensor[] {
  return inputs.map((t) => {
    const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
    return { ...t, shape: [end - start, ...t.shape.slice(1)], data: t.data.subarray(start * per, end * per) } as TypedTensor;
  });
}

export async function computeBaseline(
  signature: { inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[] },
  reference: { samples: number; inputs: readonly TypedTensor[] },
  run: (inputs: TypedTensor[]) => Promise<TypedTensor[]>,
): Promise<BaselineResult> {
  const extraction = planExtraction(signature.inputs, signature.outputs);
  if (extraction.inputs.length + extraction.outputs.length === 0) {
    throw new Error('no input or output of the model holds numbers drift can track (BYTES or scalar tensors only)');
  }
  const extractor = createFeatureExtractor(extraction, signature);
  const names = extractionFeatureNames(extraction);
  const n = reference.samples;
  const inputColumns = names.features.map(() => new Float64Array(n));
  const outputColumns = names.outputs.map(() => new Float64Array(n));
  const inputRow = new Float64Array(extractor.featureCount);
  const outputRow = new Float64Array(extractor.outputCount);
  const batch = signature.inputs.every((s) => (s.shape[0] ?? -1) < 0) ? BASELINE_BATCH : 1;
  const addRows = (inputs: TypedTensor[], outputs: TypedTensor[], first: number) => {
    const ins = inputs.map(asExtract);
    const outs = outputs.map(asExtract);
    for (let row = 0; row < (inputs[0]?.shape[0] ?? 0); row++) {
      extractor.inputRow(ins, row, inputRow);
      extractor.outputRow(outs, row, outputRow);
      inputRow.forEach((v, i) => ((inputColumns[i] as Float64Array)[first + row] = v));
      outputRow.forEach((v, i) => ((outputColumns[i] as Float64Array)[first + row] = v));
    }
  };
  const runNamed = async (inputs: TypedTensor[], start: number, end: number) => {
    try {
      return await run(inputs);
    } catch (err) {
      throw new Error(`the fp32 model could not run reference sample${end - start > 1 ? `s ${start}–${end - 1}` : ` ${start}`}: ${(err as Error).message}`);
    }
  };
  for (let start = 0; start < n; start += batch) {
    const end = Math.min(n, start + batch);
    const inputs = slice(reference.inputs, start, end);
    const outputs = await run(inputs).catch(() => null);
    if (outputs) {
      addRows(inputs, outputs, start);
      continue;
    }
    // A dynamic batch dimension the graph does not really honour (a fixed Reshape): one sample at a time.
    for (let i = start; i < end; i++) {
      const one = slice(reference.inputs, i, i + 1);
      addRows(one, await runNamed(one, i, i + 1), i);
    }
  }
  const outputCategories = extraction.outputs.flatMap((e): Array<number[] | undefined> =>
    e.mode === 'class' ? [Array.from({ length: e.size ?? 2 }, (_, k) => k)] : new Array<undefined>(extractionWidth(e)).fill(undefined),
  );
  const columns = {
    features: names.features.map((name, i): ReferenceColumn => ({ name, values: inputColumns[i] as Float64Array })),
    outputs: names.outputs.map((name, i): ReferenceColumn => {
      const categories = outputCategories[i];
      return { name, values: outputColumns[i] as Float64Array, ...(categories ? { categories } : {}) };
    }),
  };
  const baseline = { ...baselineFromReference(columns), extraction };
  return { baseline, summaryBytes: windowBytes(baseline, columns) };
}

function windowBytes(baseline: DriftBaseline, columns: { features: ReferenceColumn[]; outputs: ReferenceColumn[] }): number {
  const window = emptySummary(baseline);
  const ins = new Float64Array(columns.features.length);
  const outs = new Float64Array(columns.outputs.length);
  const rows = columns.features[0]?.values.length ?? columns.outputs[0]?.values.length ?? 0;
  for (let k = 0; k < WINDOW_SAMPLES && rows > 0; k++) {
    const r = k % rows;
    columns.features.forEach((c, i) => (ins[i] = c.values[r] as number));
    columns.outputs.forEach((c, i) => (outs[i] = c.values[r] as number));
    addSample(baseline, window, ins, outs);
  }
  return summaryBytes(window);
}
