import { float16BitsToFloat32, float32ToFloat16Bits } from '@edgefleet/shared/onnx';

/**
 * Quantization arithmetic shared by the int8 transforms: plain typed arrays in and out, no ONNX.
 */

/**
 * The smallest float16 value ≥ each positive scale, in place. Scales stored as float16 are exactly
 * these, and quantizing with them (not the float32 originals) means the file loses nothing to the
 * narrower type; rounding up keeps max |w| / scale ≤ the int8 limit, so no weight clips.
 */
export function roundScalesUpToFloat16<T extends Float32Array>(scales: T): T {
  const bits = float32ToFloat16Bits(scales);
  const halves = float16BitsToFloat32(bits);
  for (let i = 0; i < scales.length; i++) {
    // Past the largest half (65504) a scale stays float32 (the float16 pass then leaves it so);
    // below it, one step up in the bit pattern of a positive half is the next larger half.
    if (!(scales[i]! < 65504)) continue;
    scales[i] = halves[i]! >= scales[i]! ? halves[i]! : float16BitsToFloat32(Uint16Array.of(bits[i]! + 1))[0]!;
  }
  return scales;
}

/** Rounds half to even, as onnxruntime's QuantizeLinear does, so our weights match what it would produce. */
export function roundHalfToEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface PerColumnInt8 {
  /** Row-major [rows, cols] int8 values. */
  readonly values: Int8Array<ArrayBuffer>;
  /** One scale per column: value ≈ q * scale. */
  readonly scales: Float32Array<ArrayBuffer>;
}

/**
 * Symmetric int8 per column of a row-major [rows, cols] matrix (zero point 0). `limit` is 127, or 63
 * for the reduced range x86 cores without VNNI need: their u8·s8 multiply-add saturates int16 pairs.
 * An all-zero column gets scale 1 (any scale represents it; 0 would divide by zero).
 */
export function quantizePerColumn(matrix: Float32Array, rows: number, cols: number, limit = 127, float16Scales = false): PerColumnInt8 {
  if (matrix.length !== rows * cols) throw new Error(`matrix has ${matrix.length} values, expected ${rows}x${cols}`);
  const scales = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) scales[c] = Math.max(scales[c]!, Math.abs(matrix[r * cols + c]!));
  }
  for (let c = 0; c < cols; c++) scales[c] = scales[c]! > 0 ? scales[c]! / limit : 1;
  if (float16Scales) roundScalesUpToFloat16(scales);
  const values = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const q = roundHalfToEven(matrix[r * cols + c]! / scales[c]!);
      values[r * cols + c] = Math.max(-limit, Math.min(limit, q));
    }
  }
  return { values, scales };
}

/** Row-major [rows, cols] → row-major [cols, rows]. */
export function transpose(matrix: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = matrix[r * cols + c]!;
  }
  return out;
}

export interface PerChannelInt8 {
  readonly q: Int8Array<ArrayBuffer>;
  /** One scale per channel along the axis: value ≈ q * scale. */
  readonly scales: Float32Array<ArrayBuffer>;
}

/**
 * Symmetric int8 per channel along `axis` of a row-major tensor: scale = max |w| / 127 over the
 * channel (1 for an all-zero channel), zero point 0, round half to even as onnxruntime does.
 */
export function quantizeAlongAxis(values: Float32Array, dims: readonly number[], axis: number, float16Scales = false): PerChannelInt8 {
  const channels = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channelOf = (i: number): number => Math.floor(i / inner) % channels;
  const maxAbs = new Float32Array(channels);
  values.forEach((v, i) => {
    const c = channelOf(i);
    maxAbs[c] = Math.max(maxAbs[c]!, Math.abs(v));
  });
  const scales = maxAbs.map((m) => (m > 0 ? m / 127 : 1));
  if (float16Scales) roundScalesUpToFloat16(scales);
  const q = new Int8Array(values.length);
  values.forEach((v, i) => {
    q[i] = Math.max(-127, Math.min(127, roundHalfToEven(v / scales[channelOf(i)]!)));
  });
  return { q, scales };
}
