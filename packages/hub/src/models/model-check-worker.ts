import { parentPort } from 'node:worker_threads';
import { DATATYPES, datatypeFromOrt, encodeTensor, type EncodedTensor, type NumericTensor, type TensorSpec } from '@edgefleet/shared';
import { goldenInputs, typedArrayFor } from '@edgefleet/shared';
import * as ort from 'onnxruntime-node';

/**
 * Worker thread: loads a model in onnxruntime and runs the golden inputs through it, so the hub's
 * main thread never blocks on session creation or `run()`. One message in, one message out.
 */
export interface CheckRequest {
  bytes: Uint8Array;
  inputs: TensorSpec[];
}
export type CheckResponse = { ok: true; inputs: EncodedTensor[]; outputs: EncodedTensor[] } | { ok: false; error: string };

async function check(req: CheckRequest): Promise<CheckResponse> {
  const session = await ort.InferenceSession.create(req.bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const inputs = goldenInputs(req.inputs);
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) {
      const data = typedArrayFor(t.datatype, t.values);
      feeds[t.name] = new ort.Tensor(DATATYPES[t.datatype].ort as ort.Tensor.Type, data as never, t.shape);
    }
    const results = await session.run(feeds);
    const outputs: NumericTensor[] = session.outputNames.map((name) => {
      const tensor = results[name];
      if (!tensor) throw new Error(`output ${name} was not produced`);
      const datatype = datatypeFromOrt(tensor.type);
      if (!datatype) throw new Error(`output ${name} has unsupported type ${tensor.type}`);
      const values = Array.from(tensor.data as ArrayLike<number | bigint>, Number);
      return { name, datatype, shape: tensor.dims.map(Number), values };
    });
    return { ok: true, inputs: inputs.map(encodeTensor), outputs: outputs.map(encodeTensor) };
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
