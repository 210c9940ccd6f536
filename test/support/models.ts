import * as ort from 'onnxruntime-node';
import { buildConvNet, buildMlp } from '@edgefleet/shared/onnx';

/** The model the end-to-end tests roll out: small, so tests stay fast, but a real conv net. */
export function sampleModel(): Uint8Array {
  return buildConvNet({ name: 'sample', channels: 3, size: 16, filters: [8, 16], classes: 4, seed: 11 });
}

export function tinyModel(): Uint8Array {
  return buildMlp({ name: 'tiny', inputSize: 4, hidden: [8], outputSize: 3, seed: 5 });
}

/** The reference: the same input through onnxruntime-node in this process. */
export async function runDirect(model: Uint8Array, inputName: string, data: Float32Array, shape: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model);
  try {
    const out = await session.run({ [inputName]: new ort.Tensor('float32', data, shape) });
    return out[session.outputNames[0]!]!.data as Float32Array;
  } finally {
    await session.release();
  }
}
