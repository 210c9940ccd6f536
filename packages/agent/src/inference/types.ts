import type { Datatype, DriftBaseline, DriftSummary, TensorSpec, TypedArray } from '@edgefleet/shared';

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
  /** The version's drift baseline (with its extraction), verified; absent: drift is not tracked. */
  drift?: DriftBaseline;
}

/** A raw input kept for the hub (opt-in): a random one, or a hard example (uncertain output). */
export interface FieldSampleCandidate {
  reason: 'random' | 'hard';
  /** Top-2 margin and entropy of the first class output's softmax; null without a class output. */
  margin: number | null;
  entropy: number | null;
  /** Epoch ms when it was served. */
  takenAt: number;
  /** The sample's inputs, batch of 1 (copied out of the request). */
  inputs: Tensor[];
}

/** What the workers of one loaded version saw since the previous take. */
export interface DriftWindow {
  /** Merged across workers; null when nothing was served. */
  summary: DriftSummary | null;
  samples: FieldSampleCandidate[];
}

/** One model version loaded in its own worker pool. */
export interface LoadedModel extends ModelFile {
  /** Validates inputs against the signature (EdgefleetError INVALID_TENSOR naming the expected signature) and runs. */
  infer(inputs: Tensor[]): Promise<Tensor[]>;
  close(): Promise<void>;
  /** Takes this window's drift summary and field samples from every worker (each starts a new window); absent or null: not tracking. */
  takeDrift?(): Promise<DriftWindow | null>;
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

/** One version's recent requests (a rolling window of the last few hundred), for the health window's baseline. */
export interface RecentStats {
  requests: number;
  errors: number;
  /** p99 latency (ms) of the successful ones; 0 when none. */
  p99Ms: number;
}

/** Called for every request the local API records, after it is counted. */
export type RecordListener = (name: string, version: string, latencyMs: number, ok: boolean) => void;

/**
 * The active model per name, as served by the local API and reported by telemetry, and beside it at
 * most one standby per name: the version a deployment replaced, kept loaded so going back is a switch.
 */
export interface ModelTable {
  /** Makes `model` the active version of its name; returns the one it replaced (the caller keeps or closes it). */
  activate(model: LoadedModel): LoadedModel | undefined;
  /** Removes the active model of that name and returns it (the caller closes it). */
  deactivate(name: string): LoadedModel | undefined;
  get(name: string): LoadedModel | undefined;
  list(): LoadedModel[];
  /** Keeps `model` loaded, not served, as its name's standby; returns the standby it replaced (the caller closes it). */
  setStandby(model: LoadedModel): LoadedModel | undefined;
  /** Takes that name's standby out of the table, only when it is `model` when one is given (the caller activates or closes it). */
  takeStandby(name: string, model?: LoadedModel): LoadedModel | undefined;
  standby(name: string): LoadedModel | undefined;
  listStandby(): LoadedModel[];
  /** Records one served request for telemetry, /metrics and the health window. */
  record(name: string, version: string, latencyMs: number, ok: boolean): void;
  /** Counters since start, latency percentiles since the previous call. */
  snapshot(): ModelStatsSnapshot[];
  /** The last few hundred requests of name@version (empty once that version is neither active nor standby). */
  recent(name: string, version: string): RecentStats;
  /** Calls `listener` for each recorded request until the returned function is called. */
  onRecord(listener: RecordListener): () => void;
}
