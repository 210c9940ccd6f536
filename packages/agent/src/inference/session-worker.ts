// Worker-thread entry: owns one onnxruntime InferenceSession and runs jobs one at a time, so that the
// blocking `session.run()` never holds the main thread's event loop.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { DriftTracker } from './drift-tracker.js';
import { transferList, type DriftTakeRequest, type ExitRequest, type RunItem, type RunRequest, type WireTensor, type WorkerInit, type WorkerReply } from './worker-protocol.js';
import type { TensorData } from './types.js';
import { createSession as openWithFallback, type OpenedSession } from './execution-providers.js';

/** Providers to try, in order (the runtime resolves them); `opened` is the main session's outcome, for the ready reply. */
const providers = (workerData as WorkerInit).executionProviders ?? ['cpu'];
let opened: OpenedSession | undefined;

const port = parentPort;
if (!port) throw new Error('session-worker.js must run in a worker thread');
const init = workerData as WorkerInit;

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

async function runOne(session: ort.InferenceSession, inputs: WireTensor[]): Promise<WireTensor[]> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const t of inputs) feeds[t.name] = new ort.Tensor(t.type as ort.Tensor.Type, t.data as never, t.dims);
  const results = await session.run(feeds);
  return session.outputNames.map((name) => {
    const t = results[name]!;
    return { name, type: t.type, dims: [...t.dims], data: t.data as TensorData };
  });
}

/** Each request's inputs joined along dimension 0, in request order (the pool only batches equal trailing shapes). */
function concatenate(batch: WireTensor[][]): WireTensor[] {
  return batch[0]!.map((first, k) => {
    let length = 0;
    let rows = 0;
    for (const inputs of batch) {
      length += inputs[k]!.data.length;
      rows += inputs[k]!.dims[0]!;
    }
    const Ctor = first.data.constructor as new (n: number) => TensorData;
    const data = new Ctor(length);
    let offset = 0;
    for (const inputs of batch) {
      const part = inputs[k]!.data;
      (data as Float32Array).set(part as Float32Array, offset);
      offset += part.length;
    }
    return { name: first.name, type: first.type, dims: [rows, ...first.dims.slice(1)], data };
  });
}

/** Splits batched outputs back by each request's rows (views over the one output buffer); undefined if an output did not keep dimension 0. */
function split(outputs: WireTensor[], rows: number[], total: number): RunItem[] | undefined {
  if (!outputs.every((o) => o.dims[0] === total && o.data.length % Math.max(total, 1) === 0)) return undefined;
  const items: RunItem[] = rows.map(() => ({ outputs: [] }));
  for (const o of outputs) {
    if (o.data.byteOffset !== 0 || o.data.byteLength !== o.data.buffer.byteLength) o.data = o.data.slice() as TensorData;
    const perRow = o.data.length / Math.max(total, 1);
    let row = 0;
    rows.forEach((n, i) => {
      const data = o.data.subarray(row * perRow, (row + n) * perRow) as TensorData;
      (items[i] as { outputs: WireTensor[] }).outputs.push({ name: o.name, type: o.type, dims: [n, ...o.dims.slice(1)], data, ownedBuffer: true });
      row += n;
    });
  }
  return items;
}

async function runEach(session: ort.InferenceSession, batch: WireTensor[][]): Promise<RunItem[]> {
  const items: RunItem[] = [];
  for (const inputs of batch) {
    try {
      items.push({ outputs: await runOne(session, inputs) });
    } catch (err) {
      items.push({ error: (err as Error).message });
    }
  }
  return items;
}

/** This worker's drift tracking; undefined when off, or after it failed (serving goes on, the next take says why). */
let drift: DriftTracker | undefined;
let driftFailure: string | undefined;

function driftFailed(err: unknown): void {
  drift = undefined;
  driftFailure = `drift tracking stopped in this worker: ${(err as Error).message}`;
}

async function run(session: ort.InferenceSession, req: RunRequest): Promise<void> {
  const started = performance.now();
  let items: RunItem[] | undefined;
  let unbatchable = false;
  if (req.batch.length === 1) {
    items = await runEach(session, req.batch);
  } else {
    const rows = req.batch.map((inputs) => inputs[0]!.dims[0]!);
    const total = rows.reduce((a, b) => a + b, 0);
    try {
      items = split(await runOne(session, concatenate(req.batch)), rows, total);
      unbatchable = items === undefined;
    } catch {
      // One request's data may be what fails (e.g. an index out of range): run each alone so only it fails.
    }
    items ??= await runEach(session, req.batch);
  }
  const computeMs = performance.now() - started;
  // The reply moves the output buffers away: drift reads the outputs before it, the inputs (which
  // stay here) after it, so the client never waits for the input features.
  try {
    drift?.stage(req.batch, items);
  } catch (err) {
    driftFailed(err);
  }
  const buffers: ArrayBuffer[] = [];
  for (const item of items) if ('outputs' in item) transferList(item.outputs, buffers);
  reply({ type: 'result', id: req.id, items, computeMs, ...(unbatchable ? { unbatchable } : {}) }, buffers);
  try {
    drift?.commit(req.batch, items);
  } catch (err) {
    driftFailed(err);
  }
}

function takeDrift(req: DriftTakeRequest): void {
  if (!drift) return reply({ type: 'drift', id: req.id, summary: null, samples: [], ...(driftFailure ? { error: driftFailure } : {}) });
  const { summary, samples } = drift.take(Date.now());
  const buffers: ArrayBuffer[] = [];
  for (const sample of samples) transferList(sample.inputs, buffers);
  reply({ type: 'drift', id: req.id, summary, samples }, buffers);
}

/** The one place sessions are made: the main one and, in an adaptive pool's worker 0, the narrow one. */
function createSession(intraOpNumThreads: number): Promise<ort.InferenceSession> {
  return openWithFallback(ort, init.path, {
    intraOpNumThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    ...(init.allowSpinning ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  }, opened ? [opened.provider] : providers).then((o) => ((opened ??= o), o.session));
}

/** The narrow session once created (undefined before, or when it could not be made: the main one serves). */
let narrow: ort.InferenceSession | undefined;
let narrowAsked = false;

/** The session for `req`: narrow when asked for and ready; asking first starts creating it in the background. */
function sessionFor(main: ort.InferenceSession, req: RunRequest): ort.InferenceSession {
  if (!req.narrow || init.narrowThreads === undefined) return main;
  if (!narrowAsked) {
    narrowAsked = true;
    createSession(init.narrowThreads).then(
      (s) => (narrow = s),
      (err: Error) => console.error(`narrow session for ${init.path} could not be created; the main one serves: ${err.message}`),
    );
  }
  return narrow ?? main;
}

try {
  const session = await createSession(init.intraOpNumThreads);
  // Loaded only when tracking, and through shared's schema-free drift entry: the package index
  // (typebox schemas) costs each worker ~0.4 s to import and ~34 MB of RSS, the hot path ~12 ms and none of that.
  drift = init.drift ? (await import('./drift-tracker.js')).createDriftTracker(init.drift) : undefined;
  // Jobs are chained so a session never runs two at once, whatever the pool sends.
  let queue = Promise.resolve();
  port.on('message', (req: RunRequest | DriftTakeRequest | ExitRequest) => {
    // Asked to stop: between runs, never inside one (see the pool's retire()). In a worker thread
    // process.exit ends only this thread; terminate() from outside could land inside a native run.
    if (req.type === 'exit') process.exit(0);
    else if (req.type === 'drift-take') {
      // Behind the runs posted before it, so the window holds every one of them.
      queue = queue
        .then(() => takeDrift(req))
        .catch((err: Error) => reply({ type: 'drift', id: req.id, summary: null, samples: [], error: err.message }));
    } else {
      queue = queue
        .then(() => run(sessionFor(session, req), req))
        // Never leave the chain rejected (every later run would be skipped): answer each request with the error.
        .catch((err: Error) => reply({ type: 'result', id: req.id, items: req.batch.map(() => ({ error: err.message })), computeMs: 0 }));
    }
  });
  reply({ type: 'ready', inputNames: [...session.inputNames], outputNames: [...session.outputNames], provider: opened?.provider, fallbacks: opened?.fallbacks });
} catch (err) {
  reply({ type: 'init-error', message: (err as Error).message });
}
