import { EdgefleetError, isEdgefleetError, type GoldenComparison, type Manifest } from '@edgefleet/shared';
import { deliverBaseline } from '../drift/baseline-delivery.js';
import type { LoadedModel } from '../inference/types.js';
import { fetchGolden, type FetchGoldenOptions } from '../models/fetch-golden.js';
import { fetchModelFile } from '../models/fetch-model.js';
import { checkGolden } from './health-check.js';
import type { InstallStep } from './reconcile.js';
import { closeQuietly, removeFileIfUnused, type Emit, type StepContext } from './step-context.js';

const PROGRESS_STEP = 0.1;

/**
 * Downloads and verifies the model file, reporting progress in PROGRESS_STEP steps; returns its path.
 * `expectDownload` false: the file should already be here (progress appears only if it was not).
 */
async function downloadModel(manifest: Manifest, fetching: FetchGoldenOptions, emit: Emit, expectDownload: boolean): Promise<string> {
  if (expectDownload) emit('downloading', { progress: 0 });
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

/**
 * The file (downloaded, or the verified one already installed: fetchModelFile checks it and
 * downloads only when it is missing or damaged) → golden file → load → golden check. Returns the
 * loaded, checked candidate, not yet served. On failure nothing is left loaded, and a file that
 * proved unusable is deleted (unless another row uses it), then the error is rethrown.
 */
export async function prepareCandidate(ctx: StepContext, step: InstallStep, manifest: Manifest, emit: Emit): Promise<{ model: LoadedModel; worst: GoldenComparison['worst'] }> {
  const { name, version, sha256 } = step;
  let loaded: LoadedModel | undefined;
  let fileIsBad = false;
  try {
    const fetching: FetchGoldenOptions = {
      stateDir: ctx.stateDir,
      apiUrl: ctx.apiUrl,
      auth: ctx.auth,
      download: ctx.download,
      signal: ctx.signal,
      ...(ctx.diskReserveBytes === undefined ? {} : { diskReserveBytes: ctx.diskReserveBytes }),
    };
    // An installed file was verified when it came; loading it again is not a download (no progress
    // events, and its row keeps its install time, which is what pruneOldVersions orders by).
    const path = await downloadModel(manifest, fetching, emit, step.source !== 'disk');
    // fetchModelFile returns only a file with the manifest's sha256 and size.
    if (step.source !== 'disk') ctx.store.putModel({ name, version, sha256, profile: manifest.profile, path, manifest });
    // Before loading: a golden file that cannot be fetched yet is a retryable failure, not a bad model.
    const golden = await fetchGolden(manifest, fetching);
    // An unusable baseline turns drift off for this version; it never fails the deployment.
    const drift = await deliverBaseline(manifest, { stateDir: ctx.stateDir, fetching, logger: ctx.logger });

    emit('loading');
    fileIsBad = true; // from here a failure means the artifact itself is unusable
    try {
      loaded = await ctx.runtime.load({ name, version, sha256, profile: manifest.profile, path, inputs: manifest.inputs, outputs: manifest.outputs, ...(drift ? { drift } : {}) });
    } catch (err) {
      // The file matches its signed digest, so a load failure is a property of the artifact.
      if (isEdgefleetError(err)) throw err;
      throw new EdgefleetError('INVALID_MODEL', `onnxruntime could not load ${name}@${version}: ${(err as Error).message}`, { cause: err });
    }

    emit('health-check');
    const check = await checkGolden(loaded, golden);
    if (!check.ok) throw new EdgefleetError('INVALID_MODEL', `golden vector check of ${name}@${version} failed: ${check.reason ?? 'outputs differ'}`);
    return { model: loaded, worst: check.worst };
  } catch (err) {
    if (loaded) await closeQuietly(ctx, loaded);
    if (fileIsBad && !ctx.signal.aborted) {
      const row = ctx.store.listModels().find((m) => m.name === name && m.version === version);
      if (row && !row.active) ctx.store.deleteModel(name, version);
      await removeFileIfUnused(ctx, sha256, { name, version });
    }
    throw err;
  }
}
