import { DATATYPES, EdgefleetError } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { checkSignature } from './model-runtime.js';
import type { ModelFile, Tensor } from './types.js';
import { createWorkerPool } from './worker-pool.js';

/** A model file opened for timing only: one worker thread with its own onnxruntime session, apart from every serving pool. */
export interface BenchmarkSession {
  /** Runs the model once on a copy of `inputs` (they stay usable); resolves with the run's compute time in ms, measured in the worker. */
  time(inputs: readonly Tensor[]): Promise<number>;
  close(): Promise<void>;
}

export interface BenchmarkSessionOptions {
  /** onnxruntime intra-op threads: what a lone serving request gets, so numbers compare with serving. */
  threads: number;
  logger: Logger;
  /**
   * The agent stopping: the session is closed at once, so a stop never waits for a large model's
   * load (its worker is terminated) and a run in flight fails now (its worker exits once the run returns).
   */
  signal?: AbortSignal;
}

/**
 * Opens `file` in a worker of its own. `session.run()` blocks the thread it runs on, so the
 * benchmark runs off the main thread like serving does; the main thread waits for each run's answer
 * and stays free for the socket API and MQTT in between. The session does compete with the serving
 * workers for the cores: spin-waiting is off (the two could meet on the same cores, and spinning
 * threads would take the time serving requests need), and a busy device measures slower — which is
 * what its planner should know. Throws INVALID_MODEL when onnxruntime cannot load the file or its
 * input and output names differ from the manifest's, UNAVAILABLE when `signal` aborts the load.
 */
export async function openBenchmarkSession(file: ModelFile, opts: BenchmarkSessionOptions): Promise<BenchmarkSession> {
  const stoppedWhileLoading = () => new EdgefleetError('UNAVAILABLE', `the benchmark was stopped while ${file.name}@${file.version} (${file.profile}) was loading`);
  if (opts.signal?.aborted) throw stoppedWhileLoading();
  const pool = createWorkerPool({ path: file.path, workers: 1, threads: opts.threads, maxBatch: 1, allowSpinning: false, logger: opts.logger });
  const closeNow = () => void pool.close(0);
  opts.signal?.addEventListener('abort', closeNow, { once: true });
  const close = async () => {
    opts.signal?.removeEventListener('abort', closeNow);
    await pool.close(0);
  };
  let names: Awaited<ReturnType<typeof pool.start>>;
  try {
    names = await pool.start();
  } catch (err) {
    await close();
    if (opts.signal?.aborted) throw stoppedWhileLoading();
    throw err;
  }
  try {
    checkSignature(file, names);
  } catch (err) {
    await close();
    throw err;
  }
  return {
    async time(inputs) {
      // The pool moves input buffers to the worker; each run gets its own copy.
      const wire = inputs.map((t) => ({ name: t.name, type: DATATYPES[t.datatype].ort, dims: [...t.shape], data: t.data.slice() }));
      const { computeMs } = await pool.run(wire);
      return computeMs;
    },
    close,
  };
}
