import { addSample, createFeatureExtractor, emptySummary, fromHalf, type DriftSummary, type FeatureExtractor } from '@edgefleet/shared';
import type { TensorData } from './types.js';
import type { FieldSampleOptions, RunItem, WireFieldSample, WireTensor, WorkerDriftInit } from './worker-protocol.js';

/**
 * Drift tracking inside one session worker (the hot path). A run is tracked in two steps because
 * the reply transfers the output buffers away: `stage` reads each served row's output values (and,
 * with field samples on, its top-2 margin and entropy) into preallocated storage before the reply;
 * `commit` extracts the input features and adds every row to the window's summary after it, so the
 * client does not wait for that part. Errored requests are in neither step.
 *
 * Allocation per run: none for the summary once the staging storage has grown to the largest run
 * (rows are reused, never freed). Field samples copy the kept rows only (a reservoir keeps fewer and
 * fewer as the window fills), and a take allocates the next window's empty summary.
 */

/** A kept sample above this many bytes of inputs is not kept: the counts bound memory only with a size bound. */
export const MAX_FIELD_SAMPLE_BYTES = 4 * 1024 * 1024;

export interface DriftTake {
  summary: DriftSummary | null;
  samples: WireFieldSample[];
}

export interface DriftTracker {
  /** Before the reply: reads the outputs of each successful request of the run (`batch[i]` answered by `items[i]`). */
  stage(batch: readonly WireTensor[][], items: readonly RunItem[]): void;
  /** After the reply: adds the rows staged for the same run, reading their inputs (which stay in the worker). */
  commit(batch: readonly WireTensor[][], items: readonly RunItem[]): void;
  /** The window so far (summary null when no row was served); a new window starts at `now`. */
  take(now: number): DriftTake;
}

/** Samples of a request: dimension 0 of its first input that has one (1 for scalars). */
export function requestRows(inputs: readonly WireTensor[]): number {
  for (let i = 0; i < inputs.length; i++) {
    const dims = (inputs[i] as WireTensor).dims;
    if (dims.length > 0) return dims[0] as number;
  }
  return 1;
}

/** One sample's inputs copied out of the request, batch of 1; null when larger than MAX_FIELD_SAMPLE_BYTES. */
function copyRow(inputs: readonly WireTensor[], row: number): WireTensor[] | null {
  let bytes = 0;
  for (const t of inputs) bytes += t.data.byteLength / Math.max(1, t.dims[0] ?? 1);
  if (bytes > MAX_FIELD_SAMPLE_BYTES) return null;
  return inputs.map((t) => {
    if (t.dims.length === 0) return { name: t.name, type: t.type, dims: [], data: t.data.slice() as TensorData };
    const len = t.data.length / Math.max(1, t.dims[0] as number);
    return { name: t.name, type: t.type, dims: [1, ...t.dims.slice(1)], data: t.data.slice(row * len, (row + 1) * len) as TensorData };
  });
}

function valueAt(data: WireTensor['data'], i: number, half: boolean): number {
  return half ? fromHalf(data[i] as number) : Number(data[i]);
}

function findTensor(tensors: readonly WireTensor[], name: string): WireTensor | undefined {
  for (let i = 0; i < tensors.length; i++) if ((tensors[i] as WireTensor).name === name) return tensors[i];
  return undefined;
}

function keptSample(reason: 'random' | 'hard', inputs: readonly WireTensor[], row: number, margin: number, entropy: number, takenAt: number): WireFieldSample | null {
  const copied = copyRow(inputs, row);
  if (copied === null) return null;
  return { reason, margin: Number.isNaN(margin) ? null : margin, entropy: Number.isNaN(entropy) ? null : entropy, takenAt, inputs: copied };
}

/** Where the certainty of a sample is read: the first output the extraction tracks by class. */
interface ClassSource {
  tensor: string;
  half: boolean;
}

/**
 * Top-2 margin and entropy (nats) of one row of a class output, written to out[0], out[1]. A row
 * that already is a distribution (values in [0, 1] summing to 1 within 1e-3, e.g. a Softmax output)
 * is read as the probabilities; any other row (logits) goes through a softmax first, so applying it
 * twice never flattens a model's own probabilities.
 */
export function certainty(data: WireTensor['data'], start: number, length: number, half: boolean, out: Float64Array): void {
  let sum = 0;
  let max = Number.NEGATIVE_INFINITY;
  let distribution = true;
  for (let i = 0; i < length; i++) {
    const v = valueAt(data, start + i, half);
    if (!(v >= 0 && v <= 1)) distribution = false;
    if (v > max) max = v;
    sum += v;
  }
  if (length === 0 || !Number.isFinite(max)) {
    out[0] = Number.NaN;
    out[1] = Number.NaN;
    return;
  }
  distribution &&= Math.abs(sum - 1) <= 1e-3;
  let norm = 1;
  if (!distribution) {
    norm = 0;
    for (let i = 0; i < length; i++) norm += Math.exp(valueAt(data, start + i, half) - max);
  }
  let first = 0;
  let second = 0;
  let entropy = 0;
  for (let i = 0; i < length; i++) {
    const p = distribution ? valueAt(data, start + i, half) : Math.exp(valueAt(data, start + i, half) - max) / norm;
    if (p > first) {
      second = first;
      first = p;
    } else if (p > second) second = p;
    if (p > 0) entropy -= p * Math.log(p);
  }
  out[0] = first - second;
  out[1] = entropy;
}

export function createDriftTracker(init: WorkerDriftInit, now = Date.now()): DriftTracker {
  const { baseline } = init;
  if (!baseline.extraction) throw new Error('drift tracking needs a baseline with its extraction (how tensors become features); this one has none');
  const extractor: FeatureExtractor = createFeatureExtractor(baseline.extraction, { inputs: init.inputs, outputs: init.outputs });
  if (extractor.featureCount !== baseline.features.length || extractor.outputCount !== baseline.outputs.length) {
    throw new Error(
      `drift baseline has ${baseline.features.length} features and ${baseline.outputs.length} outputs; ` +
        `its extraction yields ${extractor.featureCount} and ${extractor.outputCount}`,
    );
  }
  const fieldSamples: FieldSampleOptions | undefined =
    init.fieldSamples && (init.fieldSamples.randomPerWindow > 0 || init.fieldSamples.hardPerWindow > 0) ? init.fieldSamples : undefined;
  const classExtraction = baseline.extraction.outputs.find((e) => e.mode === 'class');
  const classSource: ClassSource | undefined = classExtraction && {
    tensor: classExtraction.tensor,
    half: init.outputs.find((s) => s.name === classExtraction.tensor)?.datatype === 'FP16',
  };

  const features = new Float64Array(extractor.featureCount);
  /** Staged output values per row of the current run, grown to the largest run and reused. */
  const staged: Float64Array[] = [];
  /** Margin then entropy per staged row (field samples only). */
  let certainties = new Float64Array(0);
  const scratch = new Float64Array(2);
  let stagedRows = 0;
  let stagedAt = 0;

  let summary = emptySummary(baseline, now);
  let served = 0;
  let random: WireFieldSample[] = [];
  let hard: WireFieldSample[] = [];

  function stageRow(outputs: readonly WireTensor[], row: number): void {
    let values = staged[stagedRows];
    if (values === undefined) staged.push((values = new Float64Array(extractor.outputCount)));
    extractor.outputRow(outputs, row, values);
    if (fieldSamples) {
      if (certainties.length < 2 * (stagedRows + 1)) {
        const grown = new Float64Array(Math.max(64, 4 * (stagedRows + 1)));
        grown.set(certainties);
        certainties = grown;
      }
      scratch[0] = Number.NaN;
      scratch[1] = Number.NaN;
      const t = classSource && findTensor(outputs, classSource.tensor);
      if (t && classSource && row < (t.dims[0] ?? 1)) {
        const len = t.data.length / Math.max(1, t.dims[0] ?? 1);
        certainty(t.data, row * len, len, classSource.half, scratch);
      }
      certainties[2 * stagedRows] = scratch[0] as number;
      certainties[2 * stagedRows + 1] = scratch[1] as number;
    }
    stagedRows++;
  }

  /** Reservoir sampling for the random ones; the lowest margins for the hard ones. */
  function considerSample(inputs: readonly WireTensor[], row: number, at: number): void {
    const opts = fieldSamples as FieldSampleOptions;
    const margin = certainties[2 * at] as number;
    const entropy = certainties[2 * at + 1] as number;
    if (opts.randomPerWindow > 0) {
      const slot = random.length < opts.randomPerWindow ? random.length : Math.floor(Math.random() * served);
      if (slot < opts.randomPerWindow) {
        const kept = keptSample('random', inputs, row, margin, entropy, stagedAt);
        if (kept) random[slot] = kept;
      }
    }
    if (opts.hardPerWindow > 0 && margin < opts.hardMargin) {
      let slot = hard.length;
      if (slot >= opts.hardPerWindow) {
        // Full: replace the least uncertain (largest margin) when this one is more uncertain.
        slot = 0;
        for (let i = 1; i < hard.length; i++) if ((hard[i]!.margin as number) > (hard[slot]!.margin as number)) slot = i;
        if ((hard[slot]!.margin as number) <= margin) return;
      }
      const kept = keptSample('hard', inputs, row, margin, entropy, stagedAt);
      if (kept) hard[slot] = kept;
    }
  }

  return {
    stage(batch, items) {
      stagedRows = 0;
      if (fieldSamples) stagedAt = Date.now();
      for (let i = 0; i < items.length; i++) {
        const item = items[i] as RunItem;
        if (!('outputs' in item)) continue;
        const rows = requestRows(batch[i] as WireTensor[]);
        for (let r = 0; r < rows; r++) stageRow(item.outputs, r);
      }
    },
    commit(batch, items) {
      let at = 0;
      for (let i = 0; i < items.length && at < stagedRows; i++) {
        if (!('outputs' in (items[i] as RunItem))) continue;
        const inputs = batch[i] as WireTensor[];
        const rows = requestRows(inputs);
        for (let r = 0; r < rows; r++, at++) {
          extractor.inputRow(inputs, r, features);
          addSample(baseline, summary, features, staged[at]);
          served++;
          if (fieldSamples) considerSample(inputs, r, at);
        }
      }
      stagedRows = 0;
    },
    take(at) {
      const taken: DriftTake = { summary: served > 0 ? { ...summary, window: { start: summary.window.start, end: at } } : null, samples: [...random, ...hard] };
      summary = emptySummary(baseline, at);
      served = 0;
      random = [];
      hard = [];
      return taken;
    },
  };
}
