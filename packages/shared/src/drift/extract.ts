import { fromHalf } from '../half-float.js';
import type { TensorSpec } from '../inference.js';
import { MAX_DRIFT_CATEGORIES, MAX_DRIFT_FEATURES, MAX_DRIFT_OUTPUTS, MAX_ELEMENT_FEATURES } from './limits.js';
import type { DriftExtraction, TensorExtraction } from './schema.js';

/**
 * Model tensors → drift feature rows, one row per sample (dimension 0). The hub runs it over the
 * reference data to build a baseline; the agent runs it in the inference worker on every request,
 * so it allocates nothing per call and does constant work per value. Modes: schema.ts
 * (TensorExtraction).
 */

/** Outputs with at most this many values per sample are tracked value by value (regressors). */
const MAX_OUTPUT_ELEMENTS = 8;
/** The features of one `stats` tensor, in order. */
const STATS_FEATURES = ['mean', 'std', 'min', 'max', 'zeros'] as const;

/** A tensor as the extractor reads it: dims and its typed array (FP16 as raw Uint16 bits). */
export interface ExtractTensor {
  name: string;
  dims: readonly number[];
  data: ArrayLike<number> | ArrayLike<bigint>;
}

const perSample = (shape: readonly number[]): number | null => {
  let n = 1;
  for (const d of shape.slice(1)) {
    if (d < 0) return null;
    n *= d;
  }
  return n;
};

const TRACKABLE = new Set(['FP32', 'FP64', 'FP16', 'INT8', 'UINT8', 'INT16', 'UINT16', 'INT32', 'UINT32', 'INT64', 'UINT64', 'BOOL']);

function inputExtraction(spec: TensorSpec): TensorExtraction {
  const { shape } = spec;
  const n = perSample(shape);
  if (shape.length === 4) {
    const [, c1, , c3] = shape as [number, number, number, number];
    if (c1 >= 1 && c1 <= 4) return { tensor: spec.name, mode: 'image', layout: 'nchw', size: c1 };
    if (c3 >= 1 && c3 <= 4) return { tensor: spec.name, mode: 'image', layout: 'nhwc', size: c3 };
  }
  if (n !== null && n >= 1 && n <= MAX_ELEMENT_FEATURES) return { tensor: spec.name, mode: 'elements', size: n };
  return { tensor: spec.name, mode: 'stats' };
}

function outputExtraction(spec: TensorSpec): TensorExtraction {
  const n = perSample(spec.shape);
  const classes = spec.shape[spec.shape.length - 1] ?? 0;
  const float = spec.datatype === 'FP32' || spec.datatype === 'FP16' || spec.datatype === 'FP64';
  if (float && spec.shape.length === 2 && classes >= 2 && classes <= MAX_DRIFT_CATEGORIES) return { tensor: spec.name, mode: 'class', size: classes };
  if (n !== null && n >= 1 && n <= MAX_OUTPUT_ELEMENTS) return { tensor: spec.name, mode: 'elements', size: n };
  return { tensor: spec.name, mode: 'stats' };
}

/** Number of features one extraction yields. */
export function extractionWidth(e: TensorExtraction): number {
  switch (e.mode) {
    case 'elements':
      return e.size ?? 1;
    case 'image':
      return 2 * (e.size ?? 1) + 1;
    case 'stats':
      return STATS_FEATURES.length;
    case 'class':
      return 1;
  }
}

/**
 * The extraction for a model signature: images (rank 4 with 1–4 channels first or last) by their
 * summary features, small tensors value by value, the rest by stats; outputs of shape [N, classes]
 * by their class, small outputs value by value, the rest by stats. Tensors of a type that carries
 * no number (BYTES) are left out, and so is what would pass the feature or output limits.
 */
export function planExtraction(inputs: readonly TensorSpec[], outputs: readonly TensorSpec[]): DriftExtraction {
  const take = (specs: readonly TensorSpec[], plan: (s: TensorSpec) => TensorExtraction, limit: number): TensorExtraction[] => {
    const out: TensorExtraction[] = [];
    let width = 0;
    for (const spec of specs) {
      if (!TRACKABLE.has(spec.datatype) || spec.shape.length === 0) continue;
      let e = plan(spec);
      if (width + extractionWidth(e) > limit && e.mode === 'elements') e = { tensor: spec.name, mode: 'stats' };
      if (width + extractionWidth(e) > limit) continue;
      out.push(e);
      width += extractionWidth(e);
    }
    return out;
  };
  return { inputs: take(inputs, inputExtraction, MAX_DRIFT_FEATURES), outputs: take(outputs, outputExtraction, MAX_DRIFT_OUTPUTS) };
}

function namesOf(e: TensorExtraction): string[] {
  switch (e.mode) {
    case 'elements':
      return Array.from({ length: e.size ?? 1 }, (_, i) => `${e.tensor}[${i}]`);
    case 'image': {
      const names: string[] = [];
      for (let c = 0; c < (e.size ?? 1); c++) names.push(`${e.tensor}.c${c}.mean`, `${e.tensor}.c${c}.std`);
      names.push(`${e.tensor}.brightness`);
      return names;
    }
    case 'stats':
      return STATS_FEATURES.map((s) => `${e.tensor}.${s}`);
    case 'class':
      return [`${e.tensor}.class`];
  }
}

/** Feature names of an extraction, in row order: the baseline's feature and output names. */
export function extractionFeatureNames(extraction: DriftExtraction): { features: string[]; outputs: string[] } {
  return { features: extraction.inputs.flatMap(namesOf), outputs: extraction.outputs.flatMap(namesOf) };
}

/** Fills rows of features from tensors; created once per model, called per sample. */
export interface FeatureExtractor {
  readonly featureCount: number;
  readonly outputCount: number;
  /** Writes sample `row` of `inputs` into `features` (length featureCount); a tensor that is absent or shorter gives NaN (missing). */
  inputRow(inputs: readonly ExtractTensor[], row: number, features: Float64Array): void;
  /** Writes sample `row` of `outputs` into `values` (length outputCount). */
  outputRow(outputs: readonly ExtractTensor[], row: number, values: Float64Array): void;
}

type Reader = (data: ExtractTensor['data'], i: number) => number;
const readNumber: Reader = (data, i) => Number(data[i]);
const readHalf: Reader = (data, i) => fromHalf(data[i] as number);

function find(tensors: readonly ExtractTensor[], name: string): ExtractTensor | undefined {
  for (let i = 0; i < tensors.length; i++) if ((tensors[i] as ExtractTensor).name === name) return tensors[i];
  return undefined;
}

/** Values per sample of `t` (its length over its dim 0). */
function rowLength(t: ExtractTensor): number {
  const rows = t.dims[0] ?? 1;
  return rows > 0 ? t.data.length / rows : 0;
}

function fillMissing(out: Float64Array, at: number, width: number): void {
  for (let k = 0; k < width; k++) out[at + k] = Number.NaN;
}

function writeElements(t: ExtractTensor, read: Reader, row: number, size: number, out: Float64Array, at: number): void {
  const len = rowLength(t);
  const base = row * len;
  for (let k = 0; k < size; k++) out[at + k] = k < len ? read(t.data, base + k) : Number.NaN;
}

function writeStats(t: ExtractTensor, read: Reader, row: number, out: Float64Array, at: number): void {
  const len = rowLength(t);
  if (len === 0) return fillMissing(out, at, STATS_FEATURES.length);
  const base = row * len;
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let zeros = 0;
  for (let k = 0; k < len; k++) {
    const v = read(t.data, base + k);
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
    if (v === 0) zeros++;
  }
  const mean = sum / len;
  let squares = 0;
  for (let k = 0; k < len; k++) {
    const d = read(t.data, base + k) - mean;
    squares += d * d;
  }
  out[at] = mean;
  out[at + 1] = Math.sqrt(squares / len);
  out[at + 2] = min;
  out[at + 3] = max;
  out[at + 4] = zeros / len;
}

/** Per channel mean and population std, then brightness (Rec. 601 luma for 3 channels, else the mean of the means). */
function writeImage(t: ExtractTensor, read: Reader, row: number, channels: number, nhwc: boolean, out: Float64Array, at: number): void {
  const len = rowLength(t);
  const plane = len / channels;
  if (len === 0 || !Number.isInteger(plane)) return fillMissing(out, at, 2 * channels + 1);
  const base = row * len;
  // Channels first: a channel's values are contiguous; channels last: they are `channels` apart.
  const stride = nhwc ? channels : 1;
  let meanOfMeans = 0;
  for (let c = 0; c < channels; c++) {
    const start = base + (nhwc ? c : c * plane);
    let sum = 0;
    for (let i = 0; i < plane; i++) sum += read(t.data, start + i * stride);
    const mean = sum / plane;
    let squares = 0;
    for (let i = 0; i < plane; i++) {
      const d = read(t.data, start + i * stride) - mean;
      squares += d * d;
    }
    out[at + 2 * c] = mean;
    out[at + 2 * c + 1] = Math.sqrt(squares / plane);
    meanOfMeans += mean / channels;
  }
  out[at + 2 * channels] = channels === 3 ? 0.299 * (out[at] as number) + 0.587 * (out[at + 2] as number) + 0.114 * (out[at + 4] as number) : meanOfMeans;
}

function writeClass(t: ExtractTensor, read: Reader, row: number, out: Float64Array, at: number): void {
  const len = rowLength(t);
  if (len === 0) return fillMissing(out, at, 1);
  const base = row * len;
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < len; k++) {
    const v = read(t.data, base + k);
    // A NaN score makes the class unknown: counted as missing, not as whichever class came first.
    if (Number.isNaN(v)) return fillMissing(out, at, 1);
    if (v > bestValue) {
      bestValue = v;
      best = k;
    }
  }
  out[at] = best;
}

function writeExtraction(e: TensorExtraction, tensors: readonly ExtractTensor[], readers: ReadonlyMap<string, Reader>, row: number, out: Float64Array, at: number): void {
  const t = find(tensors, e.tensor);
  const width = extractionWidth(e);
  if (t === undefined || row >= (t.dims[0] ?? 1)) return fillMissing(out, at, width);
  const read = readers.get(e.tensor) ?? readNumber;
  switch (e.mode) {
    case 'elements':
      return writeElements(t, read, row, width, out, at);
    case 'image':
      return writeImage(t, read, row, e.size ?? 1, e.layout === 'nhwc', out, at);
    case 'stats':
      return writeStats(t, read, row, out, at);
    case 'class':
      return writeClass(t, read, row, out, at);
  }
}

/**
 * The extractor for `extraction`; `specs` gives each tensor's datatype (FP16 values arrive as raw
 * bits, INT64 as bigint).
 */
export function createFeatureExtractor(extraction: DriftExtraction, specs: { inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[] }): FeatureExtractor {
  const readers = new Map<string, Reader>();
  for (const spec of [...specs.inputs, ...specs.outputs]) readers.set(spec.name, spec.datatype === 'FP16' ? readHalf : readNumber);
  const offsets = (list: readonly TensorExtraction[]) => {
    const at: number[] = [];
    let width = 0;
    for (const e of list) {
      at.push(width);
      width += extractionWidth(e);
    }
    return { at, width };
  };
  const ins = offsets(extraction.inputs);
  const outs = offsets(extraction.outputs);
  const fill = (list: readonly TensorExtraction[], at: readonly number[], tensors: readonly ExtractTensor[], row: number, out: Float64Array) => {
    for (let i = 0; i < list.length; i++) writeExtraction(list[i] as TensorExtraction, tensors, readers, row, out, at[i] as number);
  };
  return {
    featureCount: ins.width,
    outputCount: outs.width,
    inputRow: (inputs, row, features) => fill(extraction.inputs, ins.at, inputs, row, features),
    outputRow: (outputs, row, values) => fill(extraction.outputs, outs.at, outputs, row, values),
  };
}
