import { isEdgefleetError, LONG_TEXT_MAX, type DeploymentEvent, type ErrorCode, type HealthWindowSpec, type ShadowResult } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { LoadedModel, ModelRuntime, ModelTable, RecentStats } from '../inference/types.js';
import type { ShadowOptions } from '../inference/shadow-registry.js';
import type { UpdateLock } from '../local-api/update-lock.js';
import { isNoSpaceError } from '../models/disk-space.js';
import type { Downloader } from '../models/download.js';
import { modelPath, removeFile } from '../models/model-files.js';
import type { AgentStore } from '../store/agent-store.js';
import type { StagedCandidates } from './staged.js';
import type { StandbyKeeper } from './standby.js';

/** A deployment event as the runner hands it to the hub link, which adds the envelope. */
export type DeploymentEventBody = Omit<DeploymentEvent, 'v' | 'epoch' | 'seq' | 'ts'>;

export type Emit = (phase: DeploymentEventBody['phase'], extra?: Partial<DeploymentEventBody>) => void;

/** What the switch needs of the local update lock. */
export type SwitchLock = Pick<UpdateLock, 'held' | 'waitUntilFree'>;

/** What the shadow phase needs of the shadow registry. */
export interface ShadowRunner {
  run(candidate: LoadedModel, opts: ShadowOptions, signal: AbortSignal, onProgress?: (samples: number) => void): Promise<ShadowResult>;
}

/** A switch that replaced a previous version, as the health window watches it. */
export interface Switched {
  name: string;
  version: string;
  sha256: string;
  rolloutId?: string;
  spec: HealthWindowSpec;
  previous: { version: string; sha256: string };
  /** The previous version's recent requests, taken at the switch. */
  baseline: RecentStats;
}

export interface StepContext {
  stateDir: string;
  apiUrl: string;
  auth: { username: string; password: string };
  hubPublicKey: string;
  store: AgentStore;
  runtime: ModelRuntime;
  table: ModelTable;
  download: Downloader;
  publishEvent: (event: DeploymentEventBody) => void;
  logger: Logger;
  /** Aborted when the agent stops. */
  signal: AbortSignal;
  /** Aborted when the agent stops or a newer desired document no longer wants this step: ends the long waits (shadow, deferral). */
  waitSignal: AbortSignal;
  /** Free bytes a download must leave on the disk (default in fetch-model). */
  diskReserveBytes?: number;
  staged: StagedCandidates;
  standby: StandbyKeeper;
  updateLock?: SwitchLock;
  shadow?: ShadowRunner;
  /** Longest deferral for an update lock when the assignment sets none (seconds). */
  maxDeferSec: number;
  /** Starts watching a switch (the runner owns health windows: they outlive the step). */
  watchSwitch: (switched: Switched) => void;
  /** Called the moment `name` serves another version: an earlier switch's health window no longer speaks for it. */
  onSwitch: (name: string) => void;
  now: () => number;
}

export interface StepFailure {
  code: ErrorCode;
  message: string;
  /** Worth trying again later (network, hub unavailable) rather than a property of the artifact. */
  retryable: boolean;
  /** The agent is stopping or a newer document took over: nothing to report or remember. */
  aborted?: boolean;
}

// DISK_FULL is worth retrying: space comes back when logs rotate or an operator cleans up.
const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['UNAVAILABLE', 'RANGE_NOT_SATISFIABLE', 'INTERNAL', 'DISK_FULL', 'STORAGE_ERROR']);

/** onnxruntime's messages can run long; an event over the schema's bound would not be sent at all. */
export function boundedText(text: string, max = LONG_TEXT_MAX): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function failureOf(err: unknown): StepFailure {
  const code: ErrorCode = isEdgefleetError(err) ? err.code : isNoSpaceError(err) ? 'DISK_FULL' : 'INTERNAL';
  const message = (err as Error).message ?? String(err);
  return { code, message: boundedText(message), retryable: RETRYABLE.has(code) };
}

/** Deletes a model file unless another installed row still points at the same content. */
export async function removeFileIfUnused(ctx: Pick<StepContext, 'store' | 'stateDir'>, sha256: string, except: { name: string; version: string }): Promise<void> {
  const users = ctx.store.listModels().filter((m) => m.sha256 === sha256 && !(m.name === except.name && m.version === except.version));
  if (users.length === 0) await removeFile(modelPath(ctx.stateDir, sha256));
}

export async function closeQuietly(ctx: Pick<StepContext, 'logger'>, model: LoadedModel): Promise<void> {
  try {
    await model.close();
  } catch (err) {
    ctx.logger.warn({ model: model.name, version: model.version, err: (err as Error).message }, 'closing a model failed');
  }
}
