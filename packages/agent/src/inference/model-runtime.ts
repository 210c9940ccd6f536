import type { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { DATATYPES, datatypeFromOrt, EdgefleetError, isDatatype, type TensorSpec } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { validateInputs } from './tensor-signature.js';
import type { DriftWindow, LoadedModel, ModelFile, ModelRuntime, Tensor } from './types.js';
import { chooseProviders, detectNvidiaGpu } from './execution-providers.js';
import { createWorkerPool, type PoolStats } from './worker-pool.js';
import type { FieldSampleOptions, WireTensor, WorkerDriftInit } from './worker-protocol.js';
import { createDriftTracker } from './drift-tracker.js';
import { mergeDriftParts } from './drift-window.js';

export interface ModelRuntimeOptions {
  /** Worker threads per loaded model (default: adaptive, see poolSize; given: a fixed pool of cores / threads). */
  workers?: number;
  /** onnxruntime intra-op threads per worker (default: adaptive; given: a fixed pool, workers default cores / threads). */
  threads?: number;
  /** An adaptive pool's extra workers retire after this long idle (default 30 s). */
  idleRetireMs?: number;
  /** The cores the pools are sized for (default: availableParallelism()). */
  cores?: number;
  /**
   * Dynamic batching limit in rows (default 32; 1 = off). Applies to models whose inputs and outputs
   * all have a variable dimension 0, and only while requests queue behind busy workers.
   */
  maxBatch?: number;
  /** onnxruntime intra-op spin-waiting (default: on unless workers × threads exceeds the cores). */
  allowSpinning?: boolean;
  /**
   * Execution providers sessions try, in order (EDGEFLEET_EXECUTION_PROVIDERS); absent: auto, i.e.
   * TensorRT and CUDA when this onnxruntime lists them and an NVIDIA GPU is present, then CPU.
   */
  executionProviders?: string[];
  /** Requests waiting per loaded model beyond which inference answers UNAVAILABLE (default 1024). */
  maxQueued?: number;
  /** How long closing a model (e.g. the version a deployment replaced) lets its requests finish (default 30 s). */
  drainTimeoutMs?: number;
  /** Drift tracking of models whose file carries a baseline (default true; false: off for every model). */
  drift?: boolean;
  /** Field samples kept per window (opt-in; absent: none). */
  fieldSamples?: FieldSampleOptions;
  logger: Logger;
}

/** A model served by a worker pool: the LoadedModel contract plus what the API and tests observe. */
export interface PooledModel extends LoadedModel {
  /** True while at least one worker holds a ready session. */
  isReady(): boolean;
  stats(): PoolStats;
  /** Terminates one worker as a crash would (in-flight requests fail, the worker is replaced). */
  restartWorker(index: number): Promise<void>;
  /** `dispatch` ({ worker, id, batch, narrow }) each time a request is handed to a worker. */
  readonly events: EventEmitter;
  /** Null when this model's drift is not tracked (runtime option off, or no usable baseline). */
  takeDrift(): Promise<DriftWindow | null>;
}

export interface PooledModelRuntime extends ModelRuntime {
  load(file: ModelFile): Promise<PooledModel>;
  /** Execution providers whose libraries ship with this onnxruntime build. */
  executionProviders(): string[];
  /** The most workers per model (an adaptive pool runs one until requests queue). */
  readonly workers: number;
  /** Intra-op threads a lone request gets (an adaptive pool's worker 0; its extra workers run 1). */
  readonly threads: number;
  /** The pool's shape in words, e.g. `adaptive 1-2 workers (2 threads alone, 1 each under load)` or `2x1`. */
  readonly shape: string;
}

/**
 * Pool sizing: workers × threads stays within the cores unless both are given explicitly. Either one
 * given means a fixed pool (EDGEFLEET_AGENT_WORKERS / _THREADS); neither, on more than one core, the
 * adaptive pool (worker-scaling.ts): one worker whose session has a thread per core while requests
 * come one at a time, 1-thread workers up to a worker per core once they queue.
 *
 * Why adaptive (bench/run.mjs, conv net, 2 cores, quiet box): a lone request takes ~1.6 ms on a
 * 2-thread session against ~2.9 ms on 1 thread, so a fixed 2×1 (the old default) doubled single-request
 * latency. A fixed 1×2 serves c16 about as well as 2×1 on a quiet box (≈550 vs ≈530 req/s in process)
 * but whenever another process takes CPU a 2-thread session waits for its straggling thread at every
 * operator: in process at c16 1×2 fell to ≈160 req/s while 2×1 kept ≈255–430 in the same runs. 2×2
 * without spin-waiting oversubscribes the cores (≈300 req/s at c16). Under load the adaptive pool is
 * 2×1, so it keeps 2×1's robustness; alone it is 1×2, also when another process takes a core (a lone
 * request is then as slow as on raw onnxruntime with default options: the pool reacts only to its own queue).
 */
export function poolSize(cores: number, workers?: number, threads?: number): { workers: number; threads: number; adaptive: boolean } {
  if (workers === undefined && threads === undefined && cores > 1) return { workers: cores, threads: 1, adaptive: true };
  const t = threads ?? (workers ? Math.max(1, Math.floor(cores / workers)) : 1);
  const w = workers ?? Math.max(1, Math.floor(cores / t));
  return { workers: w, threads: t, adaptive: false };
}

/** Throws INVALID_MODEL when the manifest declares an unsupported datatype or names other than the loaded session's. */
export function checkSignature(file: ModelFile, names: { inputNames: string[]; outputNames: string[] }): void {
  const same = (specs: TensorSpec[], actual: string[]) =>
    specs.length === actual.length && specs.every((s) => actual.includes(s.name));
  const bad = [...file.inputs, ...file.outputs].find((s) => !isDatatype(s.datatype));
  if (bad) throw new EdgefleetError('INVALID_MODEL', `tensor "${bad.name}" of ${file.name} has unsupported datatype ${bad.datatype}`);
  if (!same(file.inputs, names.inputNames) || !same(file.outputs, names.outputNames)) {
    throw new EdgefleetError(
      'INVALID_MODEL',
      `${file.name} ${file.version}: the manifest declares inputs [${file.inputs.map((s) => s.name)}] and outputs ` +
        `[${file.outputs.map((s) => s.name)}], the ONNX file has [${names.inputNames}] and [${names.outputNames}]`,
    );
  }
}

function toWire(t: Tensor): WireTensor {
  return { name: t.name, type: DATATYPES[t.datatype].ort, dims: t.shape, data: t.data, ...(t.ownedBuffer ? { ownedBuffer: true } : {}) };
}

/** Batching joins requests along dimension 0, so every input and output must leave it variable. */
function batchable(file: ModelFile): boolean {
  return [...file.inputs, ...file.outputs].every((s) => s.shape.length > 0 && s.shape[0]! < 0);
}

function fromWire(t: WireTensor): Tensor {
  const datatype = datatypeFromOrt(t.type);
  if (!datatype) throw new EdgefleetError('INTERNAL', `output "${t.name}" has onnxruntime type ${t.type}, which the API cannot carry`);
  return { name: t.name, datatype, shape: t.dims, data: t.data };
}

/**
 * What the workers of `file` need to track drift, or undefined (off, no baseline, or a baseline
 * whose extraction does not fit the model: logged, and the model is served untracked).
 */
function driftInit(file: ModelFile, opts: ModelRuntimeOptions, log: Logger): WorkerDriftInit | undefined {
  if (opts.drift === false || !file.drift) return undefined;
  const init: WorkerDriftInit = { baseline: file.drift, inputs: file.inputs, outputs: file.outputs, ...(opts.fieldSamples ? { fieldSamples: opts.fieldSamples } : {}) };
  try {
    createDriftTracker(init); // the same check every worker makes, here where it can be logged
    return init;
  } catch (err) {
    log.warn({ model: file.name, version: file.version, err: (err as Error).message }, 'drift baseline does not fit the model; drift is not tracked');
    return undefined;
  }
}

const DEFAULT_MAX_BATCH = 32;
/** At stop the local API has already closed, so little is left to finish; stay well inside main's stop deadline. */
const STOP_DRAIN_MS = 5_000;

export function createModelRuntime(opts: ModelRuntimeOptions): PooledModelRuntime {
  const log = opts.logger.child({ module: 'model-runtime' });
  const cores = Math.max(1, opts.cores ?? availableParallelism());
  const size = poolSize(cores, opts.workers, opts.threads);
  // Adaptive: worker 0's wide session spins like raw onnxruntime; under load it sits idle beside 1-thread sessions.
  const allowSpinning = opts.allowSpinning ?? (size.adaptive || size.workers * size.threads <= cores);
  const adaptive = size.adaptive ? { wideThreads: cores, ...(opts.idleRetireMs !== undefined ? { idleRetireMs: opts.idleRetireMs } : {}) } : undefined;
  const shape = adaptive ? `adaptive 1-${size.workers} workers (${cores} threads alone, ${size.threads} each under load)` : `${size.workers}x${size.threads}`;
  const maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  // Resolved once here, so every worker of every model tries the same providers in the same order.
  const providers = opts.executionProviders?.length
    ? [...opts.executionProviders]
    : chooseProviders('auto', ort.listSupportedBackends().map((b) => b.name), detectNvidiaGpu());
  /** Each loaded model with its close, which stop() calls with a shorter drain. */
  const loaded = new Map<PooledModel, (drainMs?: number) => Promise<void>>();
  let stopped = false;

  async function load(file: ModelFile): Promise<PooledModel> {
    if (stopped) throw new EdgefleetError('UNAVAILABLE', `cannot load ${file.name} ${file.version}: the runtime is stopped`);
    const drift = driftInit(file, opts, log);
    const pool = createWorkerPool({
      path: file.path,
      executionProviders: providers,
      workers: size.workers,
      threads: size.threads,
      allowSpinning,
      ...(adaptive ? { adaptive } : {}),
      maxBatch: batchable(file) ? maxBatch : 1,
      ...(opts.maxQueued !== undefined ? { maxQueued: opts.maxQueued } : {}),
      ...(opts.drainTimeoutMs !== undefined ? { drainTimeoutMs: opts.drainTimeoutMs } : {}),
      ...(drift ? { drift } : {}),
      logger: opts.logger,
    });
    const names = await pool.start();
    try {
      checkSignature(file, names);
    } catch (err) {
      await pool.close();
      throw err;
    }
    let closing: Promise<void> | undefined;
    const model: PooledModel = {
      ...file,
      events: pool.events,
      async infer(inputs) {
        validateInputs(file.inputs, inputs);
        const { outputs } = await pool.run(inputs.map(toWire));
        return outputs.map(fromWire);
      },
      isReady: () => closing === undefined && pool.stats().ready > 0,
      stats: () => pool.stats(),
      // Per pool, so a window never mixes versions; a worker that died since the last take lost its part.
      async takeDrift() {
        if (!drift) return null;
        return mergeDriftParts(drift.baseline, await pool.takeDrift(), drift.fieldSamples, log);
      },
      restartWorker: (index) => pool.restartWorker(index),
      close: () => closeModel(),
    };
    // Requests already queued or running finish first (new ones go to whichever version is active now).
    function closeModel(drainMs?: number): Promise<void> {
      closing ??= pool.close(drainMs).then(() => {
        loaded.delete(model);
        log.info({ model: file.name, version: file.version }, 'model unloaded');
      });
      return closing;
    }

    loaded.set(model, closeModel);
    log.info({ model: file.name, version: file.version, pool: shape }, 'model loaded');
    return model;
  }

  return {
    workers: size.workers,
    threads: adaptive ? adaptive.wideThreads : size.threads,
    shape,
    load,
    executionProviders: () => ort.listSupportedBackends().filter((b) => b.bundled).map((b) => b.name),
    async stop() {
      stopped = true;
      await Promise.all([...loaded.values()].map((close) => close(STOP_DRAIN_MS)));
    },
  };
}
