// Worker-thread entry: owns one onnxruntime InferenceSession and runs jobs one at a time, so that the
// blocking `session.run()` never holds the main thread's event loop.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { transferList, type RunRequest, type WireTensor, type WorkerInit, type WorkerReply } from './worker-protocol.js';
import type { TensorData } from './types.js';

const port = parentPort;
if (!port) throw new Error('session-worker.js must run in a worker thread');
const init = workerData as WorkerInit;

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

async function run(session: ort.InferenceSession, req: RunRequest): Promise<void> {
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of req.inputs) feeds[t.name] = new ort.Tensor(t.type as ort.Tensor.Type, t.data as never, t.dims);
    const started = performance.now();
    const results = await session.run(feeds);
    const computeMs = performance.now() - started;
    const outputs: WireTensor[] = session.outputNames.map((name) => {
      const t = results[name]!;
      return { name, type: t.type, dims: [...t.dims], data: t.data as TensorData };
    });
    reply({ type: 'result', id: req.id, outputs, computeMs }, transferList(outputs));
  } catch (err) {
    reply({ type: 'error', id: req.id, message: (err as Error).message });
  }
}

try {
  const session = await ort.InferenceSession.create(init.path, {
    intraOpNumThreads: init.intraOpNumThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  // Jobs are chained so a session never runs two at once, whatever the pool sends.
  let queue = Promise.resolve();
  port.on('message', (req: RunRequest) => {
    queue = queue.then(() => run(session, req));
  });
  reply({ type: 'ready', inputNames: [...session.inputNames], outputNames: [...session.outputNames] });
} catch (err) {
  reply({ type: 'init-error', message: (err as Error).message });
}
