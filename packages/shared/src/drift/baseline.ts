import type { BaselineFeature, DriftBaseline } from './schema.js';
import { MAX_DRIFT_CATEGORIES } from './limits.js';
import { addSample, emptySummary } from './summary.js';

/**
 * Baselines from reference data (the operator's reference set, else the calibration set).
 *
 * Rule for each column: a column with at most CATEGORICAL_MAX_DISTINCT distinct values (flags,
 * small codes, the class of a small classifier) is categorical — its categories are the values
 * seen; otherwise it is numeric, with edges at the reference minimum, the 10 %, 20 % … 90 %
 * quantiles (nearest rank, so edges are values that occur) and the maximum. Equal edges are dropped,
 * so discrete data with heavy repeats gets fewer, still populated bins. The two open bins (below the
 * minimum, above the maximum) catch what the reference never showed. A column may force its kind,
 * e.g. the class output of a 1000-class model.
 */
export const QUANTILE_BINS = 10;
/**
 * Fewest reference samples a baseline is built from. Windows need several hundred samples to be
 * judged (REFERENCES.md, "Drift"); a reference smaller than this gives deciles of a handful of values
 * and a reference histogram too noisy to judge any window against.
 */
export const MIN_BASELINE_SAMPLES = 100;
export const CATEGORICAL_MAX_DISTINCT = 10;

export interface ReferenceColumn {
  name: string;
  values: ArrayLike<number>;
  kind?: 'numeric' | 'categorical';
  /**
   * The categories when they are known beforehand (a classifier's classes 0 … n − 1, seen in the
   * reference or not): the column is categorical with exactly these, ascending.
   */
  categories?: readonly number[];
}

export interface ReferenceColumns {
  features: readonly ReferenceColumn[];
  outputs?: readonly ReferenceColumn[];
}

function sortedPresent(column: ReferenceColumn): Float64Array {
  const present: number[] = [];
  for (let i = 0; i < column.values.length; i++) {
    const v = column.values[i] as number;
    if (!Number.isNaN(v)) present.push(v);
  }
  if (present.length === 0) throw new Error(`reference column "${column.name}" has no values (all missing): cannot build its baseline`);
  for (const v of present) if (!Number.isFinite(v)) throw new Error(`reference column "${column.name}" holds ${v}: finite values expected`);
  return Float64Array.from(present).sort();
}

function distinct(sorted: Float64Array): number[] {
  const out: number[] = [];
  for (const v of sorted) if (out.length === 0 || out[out.length - 1] !== v) out.push(v);
  return out;
}

/** Edges at the minimum, the QUANTILE_BINS − 1 inner quantiles and the maximum, deduplicated. */
export function quantileEdges(sorted: Float64Array, bins = QUANTILE_BINS): number[] {
  const edges: number[] = [];
  for (let k = 0; k <= bins; k++) {
    const v = sorted[Math.round((k / bins) * (sorted.length - 1))] as number;
    if (edges.length === 0 || edges[edges.length - 1] !== v) edges.push(v);
  }
  return edges;
}

function baselineFeature(column: ReferenceColumn): BaselineFeature {
  const sorted = sortedPresent(column);
  if (column.categories !== undefined) return { name: column.name, kind: 'categorical', categories: [...column.categories] };
  const values = distinct(sorted);
  const categorical = column.kind === 'categorical' || (column.kind === undefined && values.length <= CATEGORICAL_MAX_DISTINCT);
  if (!categorical) return { name: column.name, kind: 'numeric', edges: quantileEdges(sorted) };
  if (values.length > MAX_DRIFT_CATEGORIES) {
    throw new Error(`reference column "${column.name}" has ${values.length} categories: at most ${MAX_DRIFT_CATEGORIES} expected`);
  }
  return { name: column.name, kind: 'categorical', categories: values };
}

function rowCount(columns: ReferenceColumns): number {
  const all = [...columns.features, ...(columns.outputs ?? [])];
  const n = all[0]?.values.length ?? 0;
  for (const c of all) {
    if (c.values.length !== n) throw new Error(`reference column "${c.name}" has ${c.values.length} rows: ${n} expected (same as "${all[0]?.name}")`);
  }
  return n;
}

/** Baseline edges/categories per column and the reference data summarised on them. */
export function baselineFromReference(columns: ReferenceColumns): DriftBaseline {
  const rows = rowCount(columns);
  const outputs = columns.outputs ?? [];
  const shape = { features: columns.features.map(baselineFeature), outputs: outputs.map(baselineFeature) };
  const reference = emptySummary(shape);
  const inputRow = new Array<number>(columns.features.length).fill(0);
  const outputRow = new Array<number>(outputs.length).fill(0);
  for (let r = 0; r < rows; r++) {
    columns.features.forEach((c, i) => (inputRow[i] = c.values[r] as number));
    outputs.forEach((c, i) => (outputRow[i] = c.values[r] as number));
    addSample(shape, reference, inputRow, outputRow);
  }
  return { ...shape, reference };
}
