import { compareTypedWithGolden, type GoldenComparison } from '@edgefleet/shared';
import type { LoadedModel } from '../inference/types.js';
import type { GoldenVector } from '../models/fetch-golden.js';

/**
 * Runs the golden inputs through the loaded model and compares with the golden outputs. Typed arrays
 * end to end: a golden vector from a golden file can be image-sized.
 */
export async function checkGolden(model: LoadedModel, golden: GoldenVector): Promise<GoldenComparison> {
  // Each decoded golden input has its own buffer and is used once, so the runtime may move it.
  const outputs = await model.infer(golden.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: [...t.shape], data: t.data, ownedBuffer: true })));
  return compareTypedWithGolden(outputs, golden.outputs, golden.tolerance);
}
