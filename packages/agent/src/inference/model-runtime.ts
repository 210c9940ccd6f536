import type { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { DATATYPES, datatypeFromOrt, EdgefleetError, isDatatype, type TensorSpec } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { validateInputs } from './tensor-signature.js';
import type { LoadedModel, ModelFile, ModelRuntime, Tensor } from './types.js';
import { createWorkerPool, type PoolStats } from './worker-pool.js';
import type { WireTensor } from './worker-protocol.js';

export interface ModelRuntimeOptions {
  /** Worker threads per loaded model (default: cores / threads). */
  workers?: number;
  /** onnxruntime intra-op threads per worker (default: cores / workers, at least 1). */
  threads?: number;
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
}

export interface PooledModelRuntime extends ModelRuntime {
  load(file: ModelFile): Promise<PooledModel>;
  /** Execution providers whose libraries ship with this onnxruntime build. */
  executionProviders(): string[];
  readonly workers: number;
  readonly threads: number;
}

/** Pool sizing: workers × threads stays within the cores unless both are given explicitly. */
export function poolSize(cores: number, workers?: number, threads?: number): { workers: number; threads: number } {
  const t = threads ?? (workers ? Math.max(1, Math.floor(cores / workers)) : 1);
  const w = workers ?? Math.max(1, Math.floor(cores / t));
  return { workers: w, threads: t };
}

function checkSignature(file: ModelFile, names: { inputNames: string[]; outputNames: string[] }): void {
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
  return { name: t.name, type: DATATYPES[t.datatype].ort, dims: t.shape, data: t.data };
}

function fromWire(t: WireTensor): Tensor {
  const datatype = datatypeFromOrt(t.type);
  if (!datatype) throw new EdgefleetError('INTERNAL', `output "${t.name}" has onnxruntime type ${t.type}, which the API cannot carry`);
  return { name: t.name, datatype, shape: t.dims, data: t.data };
}

export function createModelRuntime(opts: ModelRuntimeOptions): PooledModelRuntime {
  const log = opts.logger.child({ module: 'model-runtime' });
  const size = poolSize(availableParallelism(), opts.workers, opts.threads);
  const loaded = new Set<PooledModel>();
  let stopped = false;

  async function load(file: ModelFile): Promise<PooledModel> {
    if (stopped) throw new EdgefleetError('UNAVAILABLE', `cannot load ${file.name} ${file.version}: the runtime is stopped`);
    const pool = createWorkerPool({ path: file.path, workers: size.workers, threads: size.threads, logger: opts.logger });
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
      restartWorker: (index) => pool.restartWorker(index),
      close() {
        closing ??= pool.close().then(() => {
          loaded.delete(model);
          log.info({ model: file.name, version: file.version }, 'model unloaded');
        });
        return closing;
      },
    };
    loaded.add(model);
    log.info({ model: file.name, version: file.version, ...size }, 'model loaded');
    return model;
  }

  return {
    ...size,
    load,
    executionProviders: () => ort.listSupportedBackends().filter((b) => b.bundled).map((b) => b.name),
    async stop() {
      stopped = true;
      await Promise.all([...loaded].map((m) => m.close()));
    },
  };
}
