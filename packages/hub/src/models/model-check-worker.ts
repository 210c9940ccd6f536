import { parentPort } from 'node:worker_threads';
import { checkGoldenTensorSize, DATATYPES, datatypeFromOrt, goldenInputTensors, type TensorSpec, type TypedArray, type TypedTensor } from '@edgefleet/shared';
import * as ort from 'onnxruntime-node';

/**
 * Worker thread: loads a model in onnxruntime and runs the golden inputs through it, so the hub's
 * main thread never blocks on session creation or `run()`. One message in, one message out. Tensors
 * stay typed arrays throughout: a number[] copy of an image-sized tensor costs 8 bytes per element of
 * this worker's limited heap.
 */
export interface CheckRequest {
  bytes: Uint8Array;
  inputs: TensorSpec[];
}
export type CheckResponse = { ok: true; inputs: TypedTensor[]; outputs: TypedTensor[] } | { ok: false; error: string };

async function check(req: CheckRequest): Promise<CheckResponse> {
  // Throws before allocating when the declared shapes are over the golden bound.
  const inputs = goldenInputTensors(req.inputs);
  const session = await ort.InferenceSession.create(req.bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) feeds[t.name] = new ort.Tensor(DATATYPES[t.datatype].ort as ort.Tensor.Type, t.data as never, t.shape);
    const results = await session.run(feeds);
    const outputs: TypedTensor[] = session.outputNames.map((name) => {
      const tensor = results[name];
      if (!tensor) throw new Error(`output ${name} was not produced`);
      const datatype = datatypeFromOrt(tensor.type);
      if (!datatype) throw new Error(`output ${name} has unsupported type ${tensor.type}`);
      const shape = tensor.dims.map(Number);
      checkGoldenTensorSize({ name, shape });
      return { name, datatype, shape, data: tensor.data as TypedArray };
    });
    return { ok: true, inputs, outputs };
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
