import {
  EdgefleetError,
  isEdgefleetError,
  LONG_TEXT_MAX,
  verifyManifest,
  type DeploymentEvent,
  type ErrorCode,
  type GoldenComparison,
  type Manifest,
} from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { LoadedModel, ModelRuntime, ModelTable } from '../inference/types.js';
import { isNoSpaceError } from '../models/disk-space.js';
import type { Downloader } from '../models/download.js';
import { fetchModelFile } from '../models/fetch-model.js';
import { fetchGolden, type FetchGoldenOptions } from '../models/fetch-golden.js';
import { modelPath, removeFile, writeManifestSidecar } from '../models/model-files.js';
import type { AgentStore } from '../store/agent-store.js';
import { checkGolden } from './health-check.js';
import type { Step } from './reconcile.js';

/** A deployment event as the runner hands it to the hub link, which adds the envelope. */
export type DeploymentEventBody = Omit<DeploymentEvent, 'v' | 'epoch' | 'seq' | 'ts'>;

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
  signal: AbortSignal;
  /** Free bytes a download must leave on the disk (default in fetch-model). */
  diskReserveBytes?: number;
}

export interface StepFailure {
  code: ErrorCode;
  message: string;
  /** Worth trying again later (network, hub unavailable) rather than a property of the artifact. */
  retryable: boolean;
  /** The agent is stopping: nothing to report or remember. */
  aborted?: boolean;
}

// DISK_FULL is worth retrying: space comes back when logs rotate or an operator cleans up.
const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['UNAVAILABLE', 'RANGE_NOT_SATISFIABLE', 'INTERNAL', 'DISK_FULL', 'STORAGE_ERROR']);
const PROGRESS_STEP = 0.1;

export function failureOf(err: unknown): StepFailure {
  const code: ErrorCode = isEdgefleetError(err) ? err.code : isNoSpaceError(err) ? 'DISK_FULL' : 'INTERNAL';
  const message = (err as Error).message ?? String(err);
  // onnxruntime's messages can run long; an event over the schema's bound would not be sent at all.
  const bounded = message.length > LONG_TEXT_MAX ? `${message.slice(0, LONG_TEXT_MAX - 1)}…` : message;
  return { code, message: bounded, retryable: RETRYABLE.has(code) };
}

/** Deletes a model file unless another installed row still points at the same content. */
async function removeFileIfUnused(ctx: StepContext, sha256: string, except: { name: string; version: string }): Promise<void> {
  const users = ctx.store.listModels().filter((m) => m.sha256 === sha256 && !(m.name === except.name && m.version === except.version));
  if (users.length === 0) await removeFile(modelPath(ctx.stateDir, sha256));
}

/** Keeps the active version and the one before it (for a quick way back); deletes older ones. */
async function pruneOldVersions(ctx: StepContext, name: string): Promise<void> {
  const rows = ctx.store.listModels().filter((m) => m.name === name && !m.active);
  const old = rows.sort((a, b) => b.installedAt - a.installedAt).slice(1);
  for (const row of old) {
    ctx.store.deleteModel(row.name, row.version);
    await removeFileIfUnused(ctx, row.sha256, row);
  }
}

async function closeQuietly(ctx: StepContext, model: LoadedModel): Promise<void> {
  try {
    await model.close();
  } catch (err) {
    ctx.logger.warn({ model: model.name, version: model.version, err: (err as Error).message }, 'closing a model failed');
  }
}

type Emit = (phase: DeploymentEventBody['phase'], extra?: Partial<DeploymentEventBody>) => void;

/** Downloads and verifies the model file, reporting progress in PROGRESS_STEP steps; returns its path. */
async function downloadModel(manifest: Manifest, fetching: FetchGoldenOptions, emit: Emit): Promise<string> {
  emit('downloading', { progress: 0 });
  let lastProgress = 0;
  let verifying = false;
  return fetchModelFile(manifest, {
    ...fetching,
    onProgress: (p) => {
      if (p - lastProgress >= PROGRESS_STEP || (p === 1 && lastProgress < 1)) {
        lastProgress = p;
        emit('downloading', { progress: Math.min(1, p) });
      }
    },
    // Once, though a download that restarts from zero checks its digest twice.
    onVerifying: () => {
      if (!verifying) emit('verifying');
      verifying = true;
    },
  });
}

/** After the switch: the new version serves, so nothing here may turn the deployment into a failure. */
async function settleActivation(
  ctx: StepContext,
  step: Extract<Step, { kind: 'install' }>,
  previous: LoadedModel | undefined,
  worst: GoldenComparison['worst'],
  emit: Emit,
): Promise<void> {
  const { name, version, sha256 } = step;
  // Beside the file, so a lost agent.db does not take the verified model with it (restore.ts).
  await writeManifestSidecar(ctx.stateDir, { activatedAt: Date.now(), signed: step.assignment.manifest }).catch((err: Error) =>
    ctx.logger.warn({ model: name, version, err: err.message }, 'could not keep the signed manifest beside the model file'),
  );
  ctx.logger.info({ model: name, version, sha256, worst }, 'model active');
  emit('active');
  // New requests already reach the new version; the old one finishes what it holds, then unloads.
  if (previous) await closeQuietly(ctx, previous);
  // The runner clears this assignment's failure record (it copes with agent.db refusing the write).
  await pruneOldVersions(ctx, name).catch((err: Error) =>
    ctx.logger.warn({ model: name, err: err.message }, 'could not delete older versions; the next activation tries again'),
  );
}

/**
 * verify manifest → download → verify file → load → golden check → activate. On any failure the
 * previous version stays active, the new one is closed, a bad file is deleted, and the failure is
 * returned (the runner reports and remembers it).
 */
export async function runInstall(ctx: StepContext, step: Extract<Step, { kind: 'install' }>): Promise<StepFailure | undefined> {
  const { name, version, sha256 } = step;
  const base = { type: 'deployment' as const, model: name, version, sha256, ...(step.assignment.rolloutId ? { rolloutId: step.assignment.rolloutId } : {}) };
  const emit: Emit = (phase, extra = {}) => ctx.publishEvent({ ...base, phase, ...extra });
  let loaded: LoadedModel | undefined;
  let fileIsBad = false;
  try {
    // The signature is checked before a single byte is downloaded; the file's digest once, by fetchModelFile.
    const manifest: Manifest = verifyManifest(step.assignment.manifest, ctx.hubPublicKey);
    const fetching: FetchGoldenOptions = {
      stateDir: ctx.stateDir,
      apiUrl: ctx.apiUrl,
      auth: ctx.auth,
      download: ctx.download,
      signal: ctx.signal,
      ...(ctx.diskReserveBytes === undefined ? {} : { diskReserveBytes: ctx.diskReserveBytes }),
    };
    const path = await downloadModel(manifest, fetching, emit);
    // fetchModelFile returns only a file with the manifest's sha256 and size.
    ctx.store.putModel({ name, version, sha256, profile: manifest.profile, path, manifest });
    // Before loading: a golden file that cannot be fetched yet is a retryable failure, not a bad model.
    const golden = await fetchGolden(manifest, fetching);

    emit('loading');
    fileIsBad = true; // from here a failure means the artifact itself is unusable
    try {
      loaded = await ctx.runtime.load({ name, version, sha256, profile: manifest.profile, path, inputs: manifest.inputs, outputs: manifest.outputs });
    } catch (err) {
      // The file matches its signed digest, so a load failure is a property of the artifact.
      if (isEdgefleetError(err)) throw err;
      throw new EdgefleetError('INVALID_MODEL', `onnxruntime could not load ${name}@${version}: ${(err as Error).message}`, { cause: err });
    }

    emit('health-check');
    const check = await checkGolden(loaded, golden);
    if (!check.ok) throw new EdgefleetError('INVALID_MODEL', `golden vector check of ${name}@${version} failed: ${check.reason ?? 'outputs differ'}`);
    fileIsBad = false;

    // agent.db before the switch: when it cannot take the write (a full disk), the deployment fails
    // with the previous version still serving, instead of reporting a failure while the new one serves.
    ctx.store.setActive(name, version);
    const previous = ctx.table.activate(loaded);
    loaded = undefined;
    await settleActivation(ctx, step, previous, check.worst, emit);
    return undefined;
  } catch (err) {
    const failure = failureOf(err);
    if (loaded) await closeQuietly(ctx, loaded);
    if (ctx.signal.aborted) return { ...failure, aborted: true };
    if (fileIsBad) {
      const row = ctx.store.listModels().find((m) => m.name === name && m.version === version);
      if (row && !row.active) ctx.store.deleteModel(name, version);
      await removeFileIfUnused(ctx, sha256, { name, version });
    }
    const kept = ctx.table.get(name)?.version;
    ctx.logger.warn({ model: name, version, sha256, code: failure.code, err: failure.message, keptVersion: kept }, 'deployment failed');
    emit('failed', { code: failure.code, message: failure.message, ...(kept ? { keptVersion: kept } : {}) });
    return failure;
  }
}

export async function runRemove(ctx: StepContext, step: Extract<Step, { kind: 'remove' }>): Promise<void> {
  const model = ctx.table.deactivate(step.name);
  if (model) await closeQuietly(ctx, model);
  for (const row of ctx.store.listModels().filter((m) => m.name === step.name)) {
    ctx.store.deleteModel(row.name, row.version);
    await removeFileIfUnused(ctx, row.sha256, row);
  }
  ctx.logger.info({ model: step.name, version: step.version }, 'model removed');
  ctx.publishEvent({ type: 'deployment', model: step.name, version: step.version, sha256: step.sha256, phase: 'removed' });
}
