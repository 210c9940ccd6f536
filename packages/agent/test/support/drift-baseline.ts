import {
  addSample,
  baselineFromReference,
  createFeatureExtractor,
  emptySummary,
  extractionFeatureNames,
  planExtraction,
  type DriftBaseline,
  type DriftSummary,
  type ExtractTensor,
  type TensorSpec,
} from '@edgefleet/shared';

// Drift baselines and expected summaries for tests, computed the way the hub does (planExtraction,
// extract.ts, baselineFromReference) but in the test, independently of the agent's tracker.

export interface Signature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** A served request: its inputs and outputs as the extractor reads them (the caller kept copies). */
export interface Served {
  inputs: ExtractTensor[];
  outputs: ExtractTensor[];
}

const rowsOf = (s: Served): number => s.inputs[0]?.dims[0] ?? 1;

/** Feature and output rows of every sample of `served`, in order. */
export function extractRows(signature: Signature, extraction: DriftBaseline['extraction'] & object, served: readonly Served[]): { features: Float64Array[]; outputs: Float64Array[] } {
  const extractor = createFeatureExtractor(extraction, signature);
  const features: Float64Array[] = [];
  const outputs: Float64Array[] = [];
  for (const s of served) {
    for (let r = 0; r < rowsOf(s); r++) {
      const f = new Float64Array(extractor.featureCount);
      const o = new Float64Array(extractor.outputCount);
      extractor.inputRow(s.inputs, r, f);
      extractor.outputRow(s.outputs, r, o);
      features.push(f);
      outputs.push(o);
    }
  }
  return { features, outputs };
}

/** The baseline of `reference` (requests with the model's outputs), with the planned extraction. */
export function baselineFor(signature: Signature, reference: readonly Served[]): DriftBaseline {
  const extraction = planExtraction(signature.inputs, signature.outputs);
  const names = extractionFeatureNames(extraction);
  const rows = extractRows(signature, extraction, reference);
  const column = (list: Float64Array[], i: number) => Float64Array.from(list, (row) => row[i] as number);
  return {
    ...baselineFromReference({
      features: names.features.map((name, i) => ({ name, values: column(rows.features, i) })),
      outputs: names.outputs.map((name, i) => ({ name, values: column(rows.outputs, i), ...(name.endsWith('.class') ? { kind: 'categorical' as const } : {}) })),
    }),
    extraction,
  };
}

/** What the tracker should report for `served`: every row added to an empty summary. */
export function expectedSummary(signature: Signature, baseline: DriftBaseline, served: readonly Served[]): DriftSummary {
  const summary = emptySummary(baseline);
  const rows = extractRows(signature, baseline.extraction!, served);
  rows.features.forEach((f, i) => addSample(baseline, summary, f, rows.outputs[i]));
  return summary;
}
