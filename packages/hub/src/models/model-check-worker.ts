import { parentPort } from 'node:worker_threads';
import { checkGoldenTensorSize, DATATYPES, datatypeFromOrt, goldenInputTensors, type TensorSpec, type TypedArray, type TypedTensor } from '@edgefleet/shared';
import { decodeModel, readSignature } from '@edgefleet/shared/onnx';
import * as ort from 'onnxruntime-node';

/**
 * Worker thread: decodes the model, loads it in onnxruntime and runs the golden inputs through it, so
 * the hub's main thread never blocks on session creation or `run()`. Decoding happens here too, under
 * this worker's heap limit: protobuf decoding can grow a file many times over (a packed int64 field
 * costs ~38 bytes of heap per byte), and on the main thread that would end the hub. One message in,
 * one message out. Tensors stay typed arrays throughout: a number[] copy of an image-sized tensor
 * costs 8 bytes per element of this worker's limited heap.
 */
export interface CheckRequest {
  bytes: Uint8Array;
}
export interface ModelSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}
export type CheckResponse = { ok: true; signature: ModelSignature; inputs: TypedTensor[]; outputs: TypedTensor[] } | { ok: false; error: string };

function signatureOf(bytes: Uint8Array): ModelSignature {
  const signature = readSignature(decodeModel(bytes));
  if (signature.inputs.length === 0) throw new Error('the graph declares no inputs');
  if (signature.outputs.length === 0) throw new Error('the graph declares no outputs');
  return signature;
}

/**
 * onnxruntime allocates outputs natively, outside this worker's heap limit, before their size can be
 * checked: an output whose declared shape (1 per dynamic dimension, the least it can be) is already
 * over the bound is refused without running. A dynamic output can still turn out large; it is checked
 * after the run.
 */
function checkDeclaredOutputs(outputs: readonly TensorSpec[]): void {
  for (const o of outputs) checkGoldenTensorSize({ name: o.name, shape: o.shape.map((d) => (d < 0 ? 1 : d)) });
}

async function check(req: CheckRequest): Promise<CheckResponse> {
  const signature = signatureOf(req.bytes);
  // Throws before allocating when the declared shapes are over the golden bound.
  const inputs = goldenInputTensors(signature.inputs);
  checkDeclaredOutputs(signature.outputs);
  const session = await ort.InferenceSession.create(req.bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 }).catch((err: Error) => {
    throw new Error(`onnxruntime could not load the model: ${err.message}`);
  });
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) feeds[t.name] = new ort.Tensor(DATATYPES[t.datatype].ort as ort.Tensor.Type, t.data as never, t.shape);
    const results = await session.run(feeds).catch((err: Error) => {
      throw new Error(`onnxruntime could not run the model: ${err.message}`);
    });
    const outputs: TypedTensor[] = session.outputNames.map((name) => {
      const tensor = results[name];
      if (!tensor) throw new Error(`output ${name} was not produced`);
      const datatype = datatypeFromOrt(tensor.type);
      if (!datatype) throw new Error(`output ${name} has unsupported type ${tensor.type}`);
      const shape = tensor.dims.map(Number);
      checkGoldenTensorSize({ name, shape });
      return { name, datatype, shape, data: tensor.data as TypedArray };
    });
    return { ok: true, signature, inputs, outputs };
  } finally {
    await session.release();
  }
}

parentPort?.once('message', (req: CheckRequest) => {
  check(req).then(
    (res) => parentPort?.postMessage(res),
    (err: unknown) => parentPort?.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) } satisfies CheckResponse),
  );
});
