import type { Datatype, TensorSpec, TypedArray } from '@edgefleet/shared';

/** The element storage of a tensor: one typed array per datatype (FP16 as raw Uint16 bits). */
export type TensorData = TypedArray;

/** A tensor as it crosses into and out of the worker pool (its buffer is transferred, not copied). */
export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: TensorData;
  /**
   * The whole ArrayBuffer under `data` belongs to this request (e.g. a request body), so the runtime may
   * move it to a worker as is, even when `data` views only part of it. Otherwise such a view is copied.
   */
  ownedBuffer?: boolean;
}

export interface ModelFile {
  name: string;
  version: string;
  sha256: string;
  profile: string;
  /** Path of the verified ONNX file on disk. */
  path: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** One model version loaded in its own worker pool. */
export interface LoadedModel extends ModelFile {
  /** Validates inputs against the signature (EdgefleetError INVALID_TENSOR naming the expected signature) and runs. */
  infer(inputs: Tensor[]): Promise<Tensor[]>;
  close(): Promise<void>;
  /** False while no worker holds a ready session (e.g. all respawning); absent means always ready. */
  isReady?(): boolean;
}

/** Loads model files into worker pools; the only owner of onnxruntime-node. */
export interface ModelRuntime {
  load(file: ModelFile): Promise<LoadedModel>;
  stop(): Promise<void>;
}

export interface ModelStatsSnapshot {
  name: string;
  version: string;
  requests: number;
  errors: number;
  /** Latency percentiles (ms) over requests since the previous snapshot. */
  latencyMs: { p50: number; p90: number; p99: number };
}

/** The active model per name, as served by the local API and reported by telemetry. */
export interface ModelTable {
  /** Makes `model` the active version of its name; returns the one it replaced (the caller closes it). */
  activate(model: LoadedModel): LoadedModel | undefined;
  /** Removes the active model of that name and returns it (the caller closes it). */
  deactivate(name: string): LoadedModel | undefined;
  get(name: string): LoadedModel | undefined;
  list(): LoadedModel[];
  /** Records one served request for telemetry and /metrics. */
  record(name: string, version: string, latencyMs: number, ok: boolean): void;
  /** Counters since start, latency percentiles since the previous call. */
  snapshot(): ModelStatsSnapshot[];
}
