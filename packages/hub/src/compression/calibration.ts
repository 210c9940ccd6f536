/**
 * Activation ranges for static int8 quantization, from float activations the calibration set
 * produced. Pure maths: collecting the activations is collect-activations.ts's job.
 */

export interface ActivationRange {
  readonly min: number;
  readonly max: number;
}

export type CalibrationMethod = { readonly kind: 'minmax' } | { readonly kind: 'percentile'; readonly percentile: number };

export const DEFAULT_PERCENTILE = 99.999;

/** Smallest and largest finite value over every batch. */
export function minMaxRange(batches: readonly Float32Array[]): ActivationRange {
  let min = Infinity;
  let max = -Infinity;
  for (const batch of batches) {
    for (const v of batch) {
      if (!Number.isFinite(v)) continue;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  if (min > max) throw new Error('cannot calibrate a range from no finite values');
  return { min, max };
}

/**
 * The range holding all but (100 - percentile) % of the values at each end, read from a histogram
 * over the min–max range: rare outliers then do not stretch the scale every other value shares.
 * A histogram (not a sort) keeps memory flat whatever the calibration set's size.
 */
export function percentileRange(batches: readonly Float32Array[], percentile: number, bins = 4096): ActivationRange {
  if (!(percentile > 50 && percentile <= 100)) throw new Error(`percentile must be in (50, 100], got ${percentile}`);
  const full = minMaxRange(batches);
  if (percentile === 100 || full.min === full.max) return full;
  const width = (full.max - full.min) / bins;
  const counts = new Float64Array(bins);
  let total = 0;
  for (const batch of batches) {
    for (const v of batch) {
      if (!Number.isFinite(v)) continue;
      counts[Math.min(bins - 1, Math.floor((v - full.min) / width))]!++;
      total++;
    }
  }
  const tail = (total * (100 - percentile)) / 100;
  let low = 0;
  for (let seen = 0; low < bins - 1 && seen + counts[low]! <= tail; low++) seen += counts[low]!;
  let high = bins - 1;
  for (let seen = 0; high > 0 && seen + counts[high]! <= tail; high--) seen += counts[high]!;
  // Bin edges: the lowest kept bin's lower edge and the highest kept bin's upper edge.
  return { min: full.min + low * width, max: full.min + (high + 1) * width };
}

export function calibrateRange(batches: readonly Float32Array[], method: CalibrationMethod): ActivationRange {
  return method.kind === 'minmax' ? minMaxRange(batches) : percentileRange(batches, method.percentile);
}

/** A range per tensor from its collected activations. */
export function calibrateRanges(activations: ReadonlyMap<string, readonly Float32Array[]>, method: CalibrationMethod): Map<string, ActivationRange> {
  const ranges = new Map<string, ActivationRange>();
  for (const [name, batches] of activations) ranges.set(name, calibrateRange(batches, method));
  return ranges;
}

export interface Uint8Params {
  readonly scale: number;
  readonly zeroPoint: number;
}

/**
 * Asymmetric uint8 parameters for a range. The range is widened to hold 0 (zero padding and Relu
 * outputs must be exact); a range starting at 0 gets zero point 0, so quantizing clamps negatives
 * to 0 — which is how a Relu is absorbed into its producer's output range.
 */
export function uint8Params(range: ActivationRange): Uint8Params {
  const min = Math.min(0, range.min);
  const max = Math.max(0, range.max);
  if (max === min) return { scale: 1, zeroPoint: 0 };
  const scale = (max - min) / 255;
  const zeroPoint = Math.max(0, Math.min(255, Math.round(-min / scale)));
  return { scale, zeroPoint };
}

/**
 * Quantization parameters for activations of the given element type. int8 is uint8 shifted by 128:
 * the same 256 levels over the same range, zero point in [-128, 127].
 */
export function activationParams(range: ActivationRange, type: 'uint8' | 'int8'): Uint8Params {
  const p = uint8Params(range);
  return type === 'uint8' ? p : { scale: p.scale, zeroPoint: p.zeroPoint - 128 };
}
