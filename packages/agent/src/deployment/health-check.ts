import {
  compareWithGolden,
  decodeTensor,
  decodeTensorData,
  type EncodedTensor,
  type Golden,
  type GoldenComparison,
  type NumericTensor,
} from '@edgefleet/shared';
import type { LoadedModel, Tensor } from '../inference/types.js';

function toTensor(t: EncodedTensor): Tensor {
  const { datatype, data } = decodeTensorData(t);
  return { name: t.name, datatype, shape: [...t.shape], data };
}

function toNumeric(t: Tensor): NumericTensor {
  return { name: t.name, datatype: t.datatype, shape: t.shape, values: Array.from(t.data as ArrayLike<number | bigint>, Number) };
}

/** Runs the manifest's golden inputs through the loaded model and compares with its golden outputs. */
export async function checkGolden(model: LoadedModel, golden: Golden): Promise<GoldenComparison> {
  const outputs = await model.infer(golden.inputs.map(toTensor));
  return compareWithGolden(outputs.map(toNumeric), golden.outputs.map(decodeTensor), golden.tolerance);
}
