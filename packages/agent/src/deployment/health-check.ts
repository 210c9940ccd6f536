import {
  compareWithGolden,
  decodeTensor,
  isDatatype,
  typedArrayFromBytes,
  type EncodedTensor,
  type Golden,
  type GoldenComparison,
  type NumericTensor,
} from '@edgefleet/shared';
import type { LoadedModel, Tensor } from '../inference/types.js';

function toTensor(t: EncodedTensor): Tensor {
  if (!isDatatype(t.datatype)) throw new Error(`golden input ${t.name}: unsupported datatype ${t.datatype}`);
  // decodeTensor checks the byte length against the shape; the typed array keeps int64 exact.
  decodeTensor(t);
  return { name: t.name, datatype: t.datatype, shape: [...t.shape], data: typedArrayFromBytes(t.datatype, Buffer.from(t.b64, 'base64')) };
}

function toNumeric(t: Tensor): NumericTensor {
  return { name: t.name, datatype: t.datatype, shape: t.shape, values: Array.from(t.data as ArrayLike<number | bigint>, Number) };
}

/** Runs the manifest's golden inputs through the loaded model and compares with its golden outputs. */
export async function checkGolden(model: LoadedModel, golden: Golden): Promise<GoldenComparison> {
  const outputs = await model.infer(golden.inputs.map(toTensor));
  return compareWithGolden(outputs.map(toNumeric), golden.outputs.map(decodeTensor), golden.tolerance);
}
