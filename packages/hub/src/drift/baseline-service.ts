import { readFileSync } from 'node:fs';
import {
  EdgefleetError,
  INLINE_BASELINE_BYTES,
  MIN_BASELINE_SAMPLES,
  signManifest,
  type BaselineInfo,
  type BaselineSource,
  type CalibrationSummary,
  type DriftBaseline,
  type DriftManifestEntry,
  type ModelVersion,
} from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { ArtifactStore } from '../models/artifact-store.js';
import { parseCalibration } from '../models/calibration-data.js';
import { encodeCalibrationFile } from '../models/calibration-file.js';
import type { ModelRepo } from '../models/model-repo.js';
import type { VariantRepo } from '../models/variant-repo.js';
import { runBaselineBuild } from './baseline-builder.js';
import type { BaselineRepo } from './baseline-repo.js';
import { createDriftBaselines } from './drift-baselines.js';

export interface BaselineServiceDeps {
  repo: BaselineRepo;
  models: ModelRepo;
  variants: VariantRepo;
  artifacts: ArtifactStore;
  privateKeyPem: string;
  log: Logger;
  /** Heap of the build process, MB (the variant build's setting). */
  heapMb: number;
  /** The build process runner (tests may pass a stand-in); default runBaselineBuild. */
  runBuild?: typeof runBaselineBuild;
}

const binsOf = (f: DriftBaseline['features'][number]) => ({ name: f.name, kind: f.kind, bins: f.kind === 'numeric' ? f.edges.length + 1 : f.categories.length + 1 });

/** The manifest entry of a stored baseline: always by artifact digest, inline as well when small. */
export function manifestEntryOf(info: Pick<BaselineInfo, 'sha256' | 'size'>, baseline: DriftBaseline): DriftManifestEntry {
  return { sha256: info.sha256, size: info.size, ...(info.size <= INLINE_BASELINE_BYTES ? { baseline } : {}) };
}

/**
 * Drift baselines of model versions: built from the version's reference set (PUT …/reference), else
 * from its calibration set, by running the fp32 model over the samples in a child process. A stored
 * baseline is an artifact named by every accepted manifest of the version, re-signed in the same
 * transaction that records it. Builds of one version run one after another (each sees what the one
 * before stored); stop() kills the running ones.
 */
export function createBaselineService(deps: BaselineServiceDeps) {
  const { repo, models, variants, artifacts, log } = deps;
  const runBuild = deps.runBuild ?? runBaselineBuild;
  const baselines = createDriftBaselines({
    baseline: repo.baseline,
    baselines: repo.baselines,
    readArtifact: (sha) => readFileSync(artifacts.pathOf(sha)),
    unreadable: (model, version, sha256, problem) =>
      log.error({ model, version, sha256, problem }, 'drift baseline artifact missing or damaged: drift is off for this version until its reference is uploaded again'),
  });
  const chains = new Map<string, Promise<unknown>>();
  const running = new Set<{ cancel(): Promise<void> }>();
  let stopped = false;

  function oneAtATime<T>(key: string, task: () => Promise<T>): Promise<T> {
    const result = (chains.get(key) ?? Promise.resolve()).then(task, task);
    const tail = result.catch(() => undefined);
    chains.set(key, tail);
    void tail.then(() => {
      if (chains.get(key) === tail) chains.delete(key);
    });
    return result;
  }

  function versionOf(model: string, version: string): ModelVersion {
    const v = models.get(model, version);
    if (!v) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${model}@${version} does not exist`);
    return v;
  }

  async function removeUnreferenced(shas: Array<string | undefined>): Promise<void> {
    for (const sha of shas) {
      if (sha && !models.isReferenced(sha) && !variants.isReferenced(sha) && !repo.isReferenced(sha)) await artifacts.remove(sha);
    }
  }

  /** Re-signs the version's own manifest and every accepted variant's with this drift entry (inside the caller's transaction). */
  function resignManifests(model: string, version: string, entry: DriftManifestEntry): number {
    const stored = repo.manifests(model, version);
    for (const m of stored) repo.saveManifest(model, version, m, signManifest({ ...m.signed.manifest, drift: entry }, deps.privateKeyPem));
    return stored.length;
  }

  /** Runs the build over a stored file and stores the baseline; `reference` is recorded with it when the file is a reference set. */
  async function build(v: ModelVersion, source: BaselineSource, file: { sha256: string; samples: number }, reference?: { uploadedAt: string }): Promise<BaselineInfo> {
    if (stopped) throw new EdgefleetError('UNAVAILABLE', 'the hub is stopping: baselines are not built any more');
    const run = runBuild(
      { modelPath: artifacts.pathOf(v.sha256), referencePath: artifacts.pathOf(file.sha256), signature: { inputs: v.inputs, outputs: v.outputs } },
      { heapMb: deps.heapMb },
    );
    running.add(run);
    let result;
    try {
      result = await run.done;
    } catch (err) {
      if (stopped) throw new EdgefleetError('UNAVAILABLE', `the baseline build of ${v.name}@${v.version} was cancelled: the hub is stopping`);
      throw new EdgefleetError('BAD_REQUEST', `no drift baseline for ${v.name}@${v.version} from its ${source} data: ${(err as Error).message}`, { cause: err });
    } finally {
      running.delete(run);
    }
    const json = Buffer.from(JSON.stringify(result.baseline));
    const stored = await artifacts.put(json);
    const info: BaselineInfo = {
      model: v.name,
      version: v.version,
      source,
      samples: file.samples,
      features: result.baseline.features.map(binsOf),
      outputs: result.baseline.outputs.map(binsOf),
      sha256: stored.sha256,
      size: stored.size,
      summaryBytes: result.summaryBytes,
      createdAt: new Date().toISOString(),
    };
    const previous = { baseline: repo.baseline(v.name, v.version)?.sha256, reference: repo.reference(v.name, v.version)?.sha256 };
    let manifests: number;
    try {
      manifests = repo.transaction(() => {
        if (reference) repo.saveReference(v.name, v.version, { sha256: file.sha256, samples: file.samples, uploadedAt: reference.uploadedAt });
        repo.saveBaseline(info);
        return resignManifests(v.name, v.version, manifestEntryOf(info, result.baseline));
      });
    } finally {
      baselines.invalidate(v.name, v.version);
    }
    log.info({ model: v.name, version: v.version, source, sha256: info.sha256, size: info.size, features: info.features.length, outputs: info.outputs.length, summaryBytes: info.summaryBytes, manifests }, 'drift baseline stored');
    await removeUnreferenced([previous.baseline === info.sha256 ? undefined : previous.baseline, previous.reference === file.sha256 ? undefined : previous.reference]);
    return info;
  }

  return {
    baselines,
    /** Parses a reference upload like a calibration upload, builds the baseline from it and stores both (400 naming the problem, nothing stored). */
    async uploadReference(model: string, version: string, body: Uint8Array, headerLength: string | undefined): Promise<BaselineInfo> {
      const v = versionOf(model, version);
      const set = parseCalibration(body, headerLength, v.inputs, 'reference');
      if (set.samples < MIN_BASELINE_SAMPLES) {
        throw new EdgefleetError('BAD_REQUEST', `reference data for ${model}@${version} holds ${set.samples} samples: at least ${MIN_BASELINE_SAMPLES} expected (windows are judged on hundreds of samples, the reference needs at least this many)`);
      }
      // Labels mean nothing to drift; the file keeps only the model's inputs.
      const file = await artifacts.put(encodeCalibrationFile({ samples: set.samples, inputs: set.inputs }));
      try {
        return await oneAtATime(`${model}@${version}`, () => build(v, 'reference', { sha256: file.sha256, samples: set.samples }, { uploadedAt: new Date().toISOString() }));
      } catch (err) {
        await removeUnreferenced([file.sha256]);
        throw err;
      }
    },
    /**
     * After a calibration upload: builds the baseline from it in the background unless the version has
     * reference data (which always wins). A failure is logged: the calibration upload itself stands.
     */
    calibrationStored(model: string, version: string, summary: CalibrationSummary): void {
      const task = async () => {
        if (stopped || repo.reference(model, version)) return;
        if (summary.samples < MIN_BASELINE_SAMPLES) {
          log.info({ model, version, samples: summary.samples, minimum: MIN_BASELINE_SAMPLES }, 'no drift baseline from the calibration data: too few samples (upload reference data)');
          return;
        }
        await build(versionOf(model, version), 'calibration', { sha256: summary.sha256, samples: summary.samples });
      };
      oneAtATime(`${model}@${version}`, task).catch((err: unknown) => {
        log.warn({ err, model, version }, 'no drift baseline from the calibration data');
      });
    },
    info(model: string, version: string): BaselineInfo {
      versionOf(model, version);
      const info = baselines.info(model, version);
      if (!info) {
        throw new EdgefleetError('NOT_FOUND', `model ${model}@${version} has no drift baseline: upload reference data with PUT /api/v1/models/${model}/versions/${version}/reference (or calibration data)`);
      }
      return info;
    },
    /** The `drift` entry for a manifest signed now (variant-storage.ts), or undefined without a baseline. */
    manifestEntry(model: string, version: string): DriftManifestEntry | undefined {
      const info = baselines.info(model, version);
      const baseline = baselines.get(model, version);
      return info && baseline ? manifestEntryOf(info, baseline) : undefined;
    },
    /** True when a baseline, a reference set, or a manifest given to a device names this artifact. */
    isReferenced: (sha256: string) => repo.isReferenced(sha256),
    /** Kills running builds; their callers get UNAVAILABLE. Safe twice. */
    async stop(): Promise<void> {
      stopped = true;
      await Promise.all([...running].map((r) => r.cancel()));
    },
  };
}
export type BaselineService = ReturnType<typeof createBaselineService>;
