import type { ModelProto } from '@edgefleet/shared/onnx';
import { quantizeWeightsOnly, type WeightOnlyResult } from './weight-quant.js';

export type { WeightOnlyResult } from './weight-quant.js';

export interface Int8WeightsOptions {
  /** Names of Conv/MatMul/Gemm nodes whose weight stays float32. */
  readonly keepFloat?: readonly string[];
}

/**
 * int8-weights variant: a smaller download at fp32 speed. Each float32 constant weight of
 * Conv/Gemm/MatMul is stored as symmetric per-output-channel int8 with a float32 scale, read through
 * Cast + Mul that onnxruntime folds into a float32 initializer at session creation; the model then
 * computes exactly as an fp32 model whose weights were rounded to int8 steps. The output layer is
 * quantized too: with float activations its error is only the weight rounding, measured small.
 */
export function quantizeInt8Weights(source: ModelProto, options: Int8WeightsOptions = {}): WeightOnlyResult {
  return quantizeWeightsOnly(source, { keepFloat: options.keepFloat }, 'quantize weights to int8');
}
