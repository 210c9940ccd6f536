import { Counter, Histogram, Registry } from 'prom-client';

/** Per-model inference metrics, named after Triton's (nv_inference_request_success → edgefleet_…). */
export interface InferenceMetrics {
  readonly registry: Registry;
  observe(model: string, version: string, seconds: number, ok: boolean): void;
}

const LABELS = ['model', 'version'] as const;

/** Registers the metrics in `registry`, or reuses them when it already holds them (a shared registry). */
export function createInferenceMetrics(registry: Registry = new Registry()): InferenceMetrics {
  const existing = <T>(name: string) => registry.getSingleMetric(name) as T | undefined;
  const success =
    existing<Counter<(typeof LABELS)[number]>>('edgefleet_inference_request_success_total') ??
    new Counter({ name: 'edgefleet_inference_request_success_total', help: 'Inference requests served successfully', labelNames: LABELS, registers: [registry] });
  const failure =
    existing<Counter<(typeof LABELS)[number]>>('edgefleet_inference_request_failure_total') ??
    new Counter({ name: 'edgefleet_inference_request_failure_total', help: 'Inference requests that failed (bad input or runtime error)', labelNames: LABELS, registers: [registry] });
  const duration =
    existing<Histogram<(typeof LABELS)[number]>>('edgefleet_inference_request_duration_seconds') ??
    new Histogram({
      name: 'edgefleet_inference_request_duration_seconds',
      help: 'Inference request duration from parsed body to encoded response',
      labelNames: LABELS,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
  return {
    registry,
    observe(model, version, seconds, ok) {
      const labels = { model, version };
      (ok ? success : failure).inc(labels);
      duration.observe(labels, seconds);
    },
  };
}

/** Outcomes of a field sample candidate: uploaded, refused by the hub (quota 429 or another 4xx), failed (network, 5xx), dropped (queue full, or the agent stopped). */
export type FieldSampleOutcome = 'uploaded' | 'refused' | 'failed' | 'dropped';

/** Drift tracking counters; labels are bounded (model versions loaded on this device, two reasons, four outcomes). */
export interface DriftMetrics {
  readonly registry: Registry;
  window(model: string, version: string, samples: number): void;
  /** Removes the version's series: it is no longer tracked (its last window is counted), so its labels must not stay forever. */
  untrack(model: string, version: string): void;
  fieldSample(reason: 'random' | 'hard', outcome: FieldSampleOutcome): void;
}

/** Registers the drift metrics in `registry`, or reuses them when it already holds them (a shared registry). */
export function createDriftMetrics(registry: Registry = new Registry()): DriftMetrics {
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> =>
    (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
  const samples = counter('edgefleet_drift_samples_total', 'Samples summarised in drift windows published to the hub', LABELS);
  const windows = counter('edgefleet_drift_windows_total', 'Drift windows published to the hub', LABELS);
  const field = counter('edgefleet_field_samples_total', 'Field sample candidates by reason and what became of them', ['reason', 'outcome'] as const);
  return {
    registry,
    window(model, version, n) {
      windows.inc({ model, version });
      samples.inc({ model, version }, n);
    },
    untrack(model, version) {
      windows.remove({ model, version });
      samples.remove({ model, version });
    },
    fieldSample(reason, outcome) {
      field.inc({ reason, outcome });
    },
  };
}
