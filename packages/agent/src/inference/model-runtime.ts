import type { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { DATATYPES, datatypeFromOrt, EdgefleetError, isDatatype, type TensorSpec } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { validateInputs } from './tensor-signature.js';
import type { DriftWindow, LoadedModel, ModelFile, ModelRuntime, Tensor } from './types.js';
import { createWorkerPool, type PoolStats } from './worker-pool.js';
import type { FieldSampleOptions, WireTensor, WorkerDriftInit } from './worker-protocol.js';
import { createDriftTracker } from './drift-tracker.js';
import { mergeDriftParts } from './drift-window.js';

export interface ModelRuntimeOptions {
  /** Worker threads per loaded model (default: cores / threads). */
  workers?: number;
  /** onnxruntime intra-op threads per worker (default: cores / workers, at least 1). */
  threads?: number;
  /**
   * Dynamic batching limit in rows (default 32; 1 = off). Applies to models whose inputs and outputs
   * all have a variable dimension 0, and only while requests queue behind busy workers.
   */
  maxBatch?: number;
  /** onnxruntime intra-op spin-waiting (default: on unless workers × threads exceeds the cores). */
  allowSpinning?: boolean;
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
  /** `dispatch` ({ worker, id }) each time a request is handed to a worker. */
  readonly events: EventEmitter;
  /** Null when this model's drift is not tracked (runtime option off, or no usable baseline). */
  takeDrift(): Promise<DriftWindow | null>;
}

export interface PooledModelRuntime extends ModelRuntime {
  load(file: ModelFile): Promise<PooledModel>;
  /** Execution providers whose libraries ship with this onnxruntime build. */
  executionProviders(): string[];
  readonly workers: number;
  readonly threads: number;
}

/**
 * Pool sizing: workers × threads stays within the cores unless both are given explicitly; by default
 * one intra-op thread per worker and a worker per core (2×1 on 2 cores).
 *
 * Measured on 2 cores (bench/run.mjs, conv net, quiet box): 1×2 serves a lone request in ~2.6 ms
 * against ~5.1–5.3 ms for 2×1 (onnxruntime's two threads run it ~1.7–1.9x faster); at 16 concurrent
 * requests both serve about the same (≈350 req/s through the socket, ≈415–425 in process; ±10% from
 * run to run). But whenever another process takes CPU, a 2-thread session waits for its straggling
 * thread at every operator: in process at c16 1×2 fell to ≈160 req/s while 2×1 kept ≈255–430 in the
 * same runs. 2×2 without spin-waiting oversubscribes the cores (≈300 req/s at c16).
 * So the default stays 2×1; EDGEFLEET_AGENT_WORKERS=1 (threads then fill the cores) trades
 * robustness under CPU contention for half the single-request latency on a dedicated device.
 */
export function poolSize(cores: number, workers?: number, threads?: number): { workers: number; threads: number } {
  const t = threads ?? (workers ? Math.max(1, Math.floor(cores / workers)) : 1);
  const w = workers ?? Math.max(1, Math.floor(cores / t));
  return { workers: w, threads: t };
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
  const cores = availableParallelism();
  const size = poolSize(cores, opts.workers, opts.threads);
  const allowSpinning = opts.allowSpinning ?? size.workers * size.threads <= cores;
  const maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  /** Each loaded model with its close, which stop() calls with a shorter drain. */
  const loaded = new Map<PooledModel, (drainMs?: number) => Promise<void>>();
  let stopped = false;

  async function load(file: ModelFile): Promise<PooledModel> {
    if (stopped) throw new EdgefleetError('UNAVAILABLE', `cannot load ${file.name} ${file.version}: the runtime is stopped`);
    const drift = driftInit(file, opts, log);
    const pool = createWorkerPool({
      path: file.path,
      ...size,
      allowSpinning,
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
    log.info({ model: file.name, version: file.version, ...size }, 'model loaded');
    return model;
  }

  return {
    ...size,
    load,
    executionProviders: () => ort.listSupportedBackends().filter((b) => b.bundled).map((b) => b.name),
    async stop() {
      stopped = true;
      await Promise.all([...loaded.values()].map((close) => close(STOP_DRAIN_MS)));
    },
  };
}
