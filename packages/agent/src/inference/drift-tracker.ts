import { addSample, createFeatureExtractor, emptySummary, fromHalf, type DriftSummary, type FeatureExtractor } from '@edgefleet/shared/drift-hot-path';
import type { TensorData } from './types.js';
import type { FieldSampleOptions, RunItem, WireFieldSample, WireTensor, WorkerDriftInit } from './worker-protocol.js';

/**
 * Drift tracking inside one session worker (the hot path). A run is tracked in two steps because
 * the reply transfers the output buffers away: `stage` reads each served row's output values (and,
 * with field samples on, its top-2 margin and entropy) into preallocated storage before the reply;
 * `commit` extracts the input features and adds every row to the window's summary after it, so the
 * client does not wait for that part. Errored requests are in neither step.
 *
 * Memory: the staging storage is one flat Float64Array grown geometrically up to
 * MAX_STAGED_VALUES (2 MB) and reused, so no allocation per run once warm. Rows of a run past that
 * bound are added to the summary in `stage` itself, before the reply: a huge request (any local
 * client can send one) costs its own latency, never memory the worker keeps for good. Field samples
 * copy the kept rows only, within MAX_FIELD_SAMPLE_BYTES each and FIELD_SAMPLE_BUDGET_BYTES per
 * window (a row kept both at random and as hard is one copy); a take allocates the next window's
 * empty summary.
 */

/** A kept sample above this many bytes of inputs is not kept: the counts bound memory only with a size bound. */
export const MAX_FIELD_SAMPLE_BYTES = 4 * 1024 * 1024;

/** Input bytes all field samples of one window may hold in one worker; candidates past it are not kept. */
export const FIELD_SAMPLE_BUDGET_BYTES = 16 * 1024 * 1024;

/** Output values staged per run at most (8 bytes each); rows past it are tracked before the reply. */
export const MAX_STAGED_VALUES = 256 * 1024;

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
  /** Bytes of staging storage the tracker holds (bounded by MAX_STAGED_VALUES whatever a run carried). */
  stagingBytes(): number;
}

/** Samples of a request: dimension 0 of its first input that has one (1 for scalars). */
export function requestRows(inputs: readonly WireTensor[]): number {
  for (let i = 0; i < inputs.length; i++) {
    const dims = (inputs[i] as WireTensor).dims;
    if (dims.length > 0) return dims[0] as number;
  }
  return 1;
}

/** Bytes of one sample's inputs (dimension 0 of each tensor is the batch). */
function rowBytes(inputs: readonly WireTensor[]): number {
  let bytes = 0;
  for (const t of inputs) bytes += t.data.byteLength / Math.max(1, t.dims[0] ?? 1);
  return bytes;
}

/** One sample's inputs copied out of the request, batch of 1. */
function copyRow(inputs: readonly WireTensor[], row: number): WireTensor[] {
  return inputs.map((t) => {
    if (t.dims.length === 0) return { name: t.name, type: t.type, dims: [], data: t.data.slice() as TensorData };
    const len = t.data.length / Math.max(1, t.dims[0] as number);
    return { name: t.name, type: t.type, dims: [1, ...t.dims.slice(1)], data: t.data.slice(row * len, (row + 1) * len) as TensorData };
  });
}

const valueAt = (data: WireTensor['data'], i: number, half: boolean): number => (half ? fromHalf(data[i] as number) : Number(data[i]));

function findTensor(tensors: readonly WireTensor[], name: string): WireTensor | undefined {
  for (let i = 0; i < tensors.length; i++) if ((tensors[i] as WireTensor).name === name) return tensors[i];
  return undefined;
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
  const outputCount = extractor.outputCount;
  /** One row's output values: what outputRow writes and addSample reads. */
  const rowValues = new Float64Array(outputCount);
  const maxStagedRows = Math.max(1, Math.floor(MAX_STAGED_VALUES / Math.max(1, outputCount)));
  /** Output values of the run's staged rows, row after row (stagedRows × outputCount used). */
  let staged = new Float64Array(0);
  /** Margin then entropy per staged row (field samples only). */
  let certainties = new Float64Array(0);
  const scratch = new Float64Array(2);
  let capacityRows = 0;
  let stagedRows = 0;
  let stagedAt = 0;
  let summary = emptySummary(baseline, now);
  let served = 0;
  let random: WireFieldSample[] = [];
  let hard: WireFieldSample[] = [];

  /** Room for `rows` staged rows: capacity doubled as needed, never past maxStagedRows (stage stops there). */
  function ensureStaging(rows: number): void {
    if (rows <= capacityRows) return;
    capacityRows = Math.min(maxStagedRows, Math.max(64, rows, 2 * capacityRows));
    const grown = new Float64Array(capacityRows * outputCount);
    grown.set(staged.subarray(0, stagedRows * outputCount));
    staged = grown;
    if (fieldSamples) {
      const grownCertainties = new Float64Array(2 * capacityRows);
      grownCertainties.set(certainties.subarray(0, 2 * stagedRows));
      certainties = grownCertainties;
    }
  }

  /** Margin and entropy of `row` into scratch (NaN without a class output). */
  function readCertainty(outputs: readonly WireTensor[], row: number): void {
    scratch[0] = Number.NaN;
    scratch[1] = Number.NaN;
    const t = classSource && findTensor(outputs, classSource.tensor);
    if (t && classSource && row < (t.dims[0] ?? 1)) {
      const len = t.data.length / Math.max(1, t.dims[0] ?? 1);
      certainty(t.data, row * len, len, classSource.half, scratch);
    }
  }

  function stageRow(outputs: readonly WireTensor[], row: number): void {
    ensureStaging(stagedRows + 1);
    extractor.outputRow(outputs, row, rowValues);
    staged.set(rowValues, stagedRows * outputCount);
    if (fieldSamples) {
      readCertainty(outputs, row);
      certainties[2 * stagedRows] = scratch[0] as number;
      certainties[2 * stagedRows + 1] = scratch[1] as number;
    }
    stagedRows++;
  }

  /** Adds one row to the window; `rowValues` holds its outputs, margin and entropy are given. */
  function addRow(inputs: readonly WireTensor[], row: number, margin: number, entropy: number): void {
    extractor.inputRow(inputs, row, features);
    addSample(baseline, summary, features, rowValues);
    served++;
    if (fieldSamples) considerSample(inputs, row, margin, entropy);
  }

  /** Input bytes the kept samples hold, leaving out `list[slot]` (about to be replaced); a copy shared by a random and a hard sample counts once. */
  function heldBytes(list: readonly WireFieldSample[], slot: number): number {
    const seen = new Set<WireTensor[]>();
    let bytes = 0;
    for (const kept of [random, hard]) {
      for (let i = 0; i < kept.length; i++) {
        if (kept === list && i === slot) continue;
        const inputs = (kept[i] as WireFieldSample).inputs;
        if (seen.has(inputs)) continue;
        seen.add(inputs);
        bytes += rowBytes(inputs);
      }
    }
    return bytes;
  }

  /**
   * Keeps the row in `list[slot]` when it fits the size bounds; `copied` is the copy already made of
   * this row for the other list (one copy for both). Returns the copy kept, or null.
   */
  function keep(list: WireFieldSample[], slot: number, reason: 'random' | 'hard', inputs: readonly WireTensor[], row: number, margin: number, entropy: number, copied: WireTensor[] | null): WireTensor[] | null {
    const bytes = copied === null ? rowBytes(inputs) : 0;
    if (bytes > MAX_FIELD_SAMPLE_BYTES || (bytes > 0 && heldBytes(list, slot) + bytes > FIELD_SAMPLE_BUDGET_BYTES)) return null;
    const kept = copied ?? copyRow(inputs, row);
    list[slot] = { reason, margin: Number.isNaN(margin) ? null : margin, entropy: Number.isNaN(entropy) ? null : entropy, takenAt: stagedAt, inputs: kept };
    return kept;
  }

  /** Reservoir sampling for the random ones; the lowest margins for the hard ones. */
  function considerSample(inputs: readonly WireTensor[], row: number, margin: number, entropy: number): void {
    const opts = fieldSamples as FieldSampleOptions;
    let copied: WireTensor[] | null = null;
    if (opts.randomPerWindow > 0) {
      const slot = random.length < opts.randomPerWindow ? random.length : Math.floor(Math.random() * served);
      if (slot < opts.randomPerWindow) copied = keep(random, slot, 'random', inputs, row, margin, entropy, null);
    }
    if (opts.hardPerWindow > 0 && margin < opts.hardMargin) {
      let slot = hard.length;
      if (slot >= opts.hardPerWindow) {
        // Full: replace the least uncertain (largest margin) when this one is more uncertain.
        slot = 0;
        for (let i = 1; i < hard.length; i++) if ((hard[i]!.margin as number) > (hard[slot]!.margin as number)) slot = i;
        if ((hard[slot]!.margin as number) <= margin) return;
      }
      keep(hard, slot, 'hard', inputs, row, margin, entropy, copied);
    }
  }

  return {
    stage(batch, items) {
      stagedRows = 0;
      if (fieldSamples) stagedAt = Date.now();
      for (let i = 0; i < items.length; i++) {
        const item = items[i] as RunItem;
        if (!('outputs' in item)) continue;
        const inputs = batch[i] as WireTensor[];
        const rows = requestRows(inputs);
        for (let r = 0; r < rows; r++) {
          if (stagedRows < maxStagedRows) {
            stageRow(item.outputs, r);
            continue;
          }
          // Past the staging bound: tracked now, while the outputs are still here.
          extractor.outputRow(item.outputs, r, rowValues);
          if (fieldSamples) readCertainty(item.outputs, r);
          addRow(inputs, r, scratch[0] as number, scratch[1] as number);
        }
      }
    },
    commit(batch, items) {
      let at = 0;
      for (let i = 0; i < items.length && at < stagedRows; i++) {
        if (!('outputs' in (items[i] as RunItem))) continue;
        const inputs = batch[i] as WireTensor[];
        const rows = requestRows(inputs);
        for (let r = 0; r < rows && at < stagedRows; r++, at++) {
          for (let k = 0; k < outputCount; k++) rowValues[k] = staged[at * outputCount + k] as number;
          addRow(inputs, r, certainties[2 * at] ?? Number.NaN, certainties[2 * at + 1] ?? Number.NaN);
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
    stagingBytes: () => staged.byteLength + certainties.byteLength,
  };
}
