import { readFile } from 'node:fs/promises';
import {
  BUILT_PROFILES,
  EdgefleetError,
  PROFILES,
  type BuildVariantsRequest,
  type CalibrationSummary,
  type ModelVersion,
  type Profile,
  type VariantBuild,
  type VariantDetail,
  type VariantList,
} from '@edgefleet/shared';
import type { Logger } from 'pino';
import { runVariantBuild, type BuildProgress, type BuiltVariant, type VariantBuildJob, type VariantBuildLimits } from '../compression/variant-builder.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { ArtifactStore } from './artifact-store.js';
import { parseCalibration } from './calibration-data.js';
import { createCalibrationStore } from './calibration-store.js';
import { goldenInputsOf } from './golden-field.js';
import type { ModelRepo } from './model-repo.js';
import type { VariantRepo } from './variant-repo.js';
import { createVariantStorage, type VariantDriftHooks } from './variant-storage.js';

/** Share of each pruned weight tensor set to zero when the request does not say. */
export const DEFAULT_PRUNE_SPARSITY = 0.5;

export interface VariantServiceDeps {
  models: ModelRepo;
  variants: VariantRepo;
  artifacts: ArtifactStore;
  privateKeyPem: string;
  bus: HubEventBus;
  log: Logger;
  /** Queue a build when a version or its calibration data is uploaded. */
  autoBuild: boolean;
  /** The build process's heap limit. */
  limits?: VariantBuildLimits;
  /** The build process runner (tests may pass a stand-in); default runVariantBuild. */
  runBuild?: typeof runVariantBuild;
  /** Drift baselines: named by the manifests signed here, built from a calibration upload. */
  drift?: VariantDriftHooks & { calibrationStored(model: string, version: string, summary: CalibrationSummary): void };
}

type BuiltProfile = Exclude<Profile, 'fp32'>;

/** What the runner does with a build whose worker it cancelled. */
type CancelReason = 'stop' | 'requeue';

interface Running {
  model: string;
  version: string;
  cancel: (why: CancelReason) => Promise<void>;
  finished: Promise<void>;
}

const now = () => new Date().toISOString();
const busy = (b: VariantBuild | undefined) => b !== undefined && (b.state === 'queued' || b.state === 'running');

/**
 * Variant builds: a queue in SQLite (one row per version, state 'queued' → 'running' → 'done' | 'failed'),
 * worked one build at a time hub-wide in a heap-limited child process (never on the event loop).
 * Each finished variant is stored as it arrives — its file and zstd transfer copy content-addressed,
 * its golden vector (fp32's inputs, its own outputs) and a manifest signed with the hub key. A hub
 * that stops mid-build leaves the row 'running'; the next start runs it again from the beginning.
 */
export function createVariantService(deps: VariantServiceDeps) {
  const { models, variants, artifacts, bus, log } = deps;
  const runBuild = deps.runBuild ?? runVariantBuild;
  let started = false;
  let current: Running | null = null;

  function versionOf(model: string, version: string): ModelVersion {
    const v = models.get(model, version);
    if (!v) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${model}@${version} does not exist`);
    return v;
  }

  function emit(build: VariantBuild, variant?: { profile: string; state: string }): void {
    bus.emit('variants', {
      model: build.model,
      version: build.version,
      state: build.state,
      progress: build.progress,
      ...(variant ? { profile: variant.profile, variantState: variant.state } : {}),
    });
  }

  function save(build: VariantBuild, variant?: { profile: string; state: string }): void {
    variants.saveBuild(build);
    emit(build, variant);
  }

  const { removeUnreferenced, storeVariant } = createVariantStorage({ models, variants, artifacts, privateKeyPem: deps.privateKeyPem, ...(deps.drift ? { drift: deps.drift } : {}) });
  const calibrations = createCalibrationStore({ variants, artifacts, removeUnreferenced, buildRunning: () => current !== null, log });

  /** The row of a variant that has no result (yet): building, or failed with the reason. */
  function emptyVariant(model: string, version: string, profile: BuiltProfile, state: 'building' | 'failed', reason: string | null): VariantDetail {
    const at = now();
    return { model, version, profile, state, reason, sha256: null, size: null, transfer: null, evaluation: null, createdAt: at, updatedAt: at, manifest: null };
  }

  /**
   * The build's input: the fp32 file, its golden inputs, the path of the calibration file when one
   * was uploaded (the build process decodes it; calibration-store.ts keeps the file while a build runs).
   */
  async function jobFor(build: VariantBuild, version: ModelVersion): Promise<VariantBuildJob> {
    const model = await readFile(artifacts.pathOf(version.sha256));
    const goldenInputs = await goldenInputsOf(artifacts, version.manifest.manifest);
    const summary = variants.calibration(build.model, build.version);
    return {
      model: new Uint8Array(model.buffer, model.byteOffset, model.byteLength),
      goldenInputs,
      ...(summary ? { calibrationFile: artifacts.pathOf(summary.sha256) } : {}),
      profiles: build.profiles,
      budget: build.budget,
      pruneSparsity: build.pruneSparsity,
      calibrationMethod: build.calibrationMethod,
    };
  }

  /** Runs one build to its end (or until cancelled); never throws. */
  async function run(queued: VariantBuild): Promise<void> {
    const total = queued.profiles.length;
    let build: VariantBuild = { ...queued, state: 'running', startedAt: now(), endedAt: null, error: null, progress: { done: 0, total, profile: null, step: null } };
    let cancelled: CancelReason | null = null;
    let handle: { done: Promise<void>; cancel(): Promise<void> } | null = null;
    let storing = Promise.resolve();
    let storeError: Error | null = null;

    async function work(): Promise<void> {
      const version = versionOf(build.model, build.version);
      // A profile with a result keeps it (accepted variants stay plannable and deployable) until this build replaces it.
      const existing = new Set(variants.list(build.model, build.version).map((v) => v.profile));
      for (const profile of build.profiles) {
        if (!existing.has(profile)) variants.upsert(emptyVariant(build.model, build.version, profile, 'building', null));
      }
      save(build);
      const job = await jobFor(build, version);
      if (cancelled) return;
      handle = runBuild(job, {
        ...(deps.limits ? { limits: deps.limits } : {}),
        onProgress(p: BuildProgress) {
          if (cancelled) return;
          build = { ...build, progress: p };
          save(build);
        },
        onVariant(v: BuiltVariant) {
          // Stored in arrival order; the build ends only after the last one is stored.
          storing = storing.then(async () => {
            if (storeError || cancelled) return;
            try {
              build = { ...build, progress: { ...build.progress, profile: v.profile, step: 'store' } };
              await storeVariant(version, job.goldenInputs, v);
              emit(build, { profile: v.profile, state: v.state });
            } catch (err) {
              storeError = err as Error;
              void handle?.cancel();
            }
          });
        },
      });
      try {
        await handle.done;
      } finally {
        await storing;
      }
      if (storeError) throw storeError;
    }

    const finished = (async () => {
      try {
        await work();
        if (cancelled) return;
        build = { ...build, state: 'done', endedAt: now(), progress: { ...build.progress, done: total, profile: null, step: null } };
        failLeftovers(build, 'the build ended without a result for this profile');
        save(build);
        log.info({ model: build.model, version: build.version, profiles: build.profiles }, 'variant build done');
      } catch (err) {
        if (cancelled) return;
        const message = (storeError ?? (err as Error)).message;
        build = { ...build, state: 'failed', endedAt: now(), error: message };
        failLeftovers(build, `the build failed: ${message}`);
        save(build);
        log.error({ err, model: build.model, version: build.version }, 'variant build failed');
      } finally {
        // Requeued (new calibration data): back in the queue before the runner looks for the next build.
        if (cancelled === 'requeue') save({ ...queued, state: 'queued', startedAt: null, endedAt: null, error: null, progress: { done: 0, total, profile: null, step: null } });
      }
    })();
    current = {
      model: build.model,
      version: build.version,
      finished,
      async cancel(why) {
        cancelled = why;
        await handle?.cancel().catch(() => undefined);
        // A store error while ending is logged by pump(); stopping goes on.
        await finished.catch(() => undefined);
      },
    };
    await finished;
  }

  /** Variants of the build still 'building' when it ends get the build's outcome as their reason. */
  function failLeftovers(build: VariantBuild, reason: string): void {
    for (const v of variants.list(build.model, build.version)) {
      if (v.state === 'building' && build.profiles.includes(v.profile as BuiltProfile)) {
        variants.upsert(emptyVariant(build.model, build.version, v.profile as BuiltProfile, 'failed', reason));
      }
    }
  }

  /**
   * The oldest unfinished build. A damaged row (its stored JSON does not read) is marked failed and
   * logged, so it blocks neither the builds after it nor the hub; undefined when there is none.
   */
  function nextBuild(): VariantBuild | undefined {
    try {
      return variants.unfinishedBuilds()[0];
    } catch (err) {
      log.error({ err }, 'an unfinished variant build could not be read; marking damaged builds failed');
    }
    for (const damaged of variants.failDamagedBuilds(now())) log.error({ model: damaged.model, version: damaged.version, error: damaged.error }, 'variant build failed: its stored row is damaged');
    return variants.unfinishedBuilds()[0];
  }

  /**
   * run() stores its own outcome; this is a store that failed while doing so. True when the build
   * could at least be marked failed (else the queue waits: it would pick the same build again).
   */
  function recordedAsFailed(build: VariantBuild, err: Error): boolean {
    log.error({ err, model: build.model, version: build.version }, 'variant build could not record its outcome');
    try {
      variants.markBuildFailed(build.model, build.version, `the build could not record its outcome: ${err.message}`, now());
      return true;
    } catch (markErr) {
      log.error({ err: markErr, model: build.model, version: build.version }, 'variant build could not be marked failed; the queue waits');
      return false;
    }
  }

  /** Works the queue, oldest first, while started; one build at a time. A storage error stops the queue, never the hub. */
  function pump(): void {
    if (!started || current) return;
    let next: VariantBuild | undefined;
    try {
      next = nextBuild();
    } catch (err) {
      log.error({ err }, 'the variant build queue cannot be read; builds wait for the next request or start');
      return;
    }
    if (!next) return;
    const build = next;
    void run(build)
      .then(
        () => true,
        (err: unknown) => recordedAsFailed(build, err as Error),
      )
      .then(async (goOn) => {
        current = null;
        await calibrations.removeRetired();
        if (goOn) pump();
      })
      .catch((err: unknown) => log.error({ err }, 'the variant build queue failed'));
  }

  function queue(model: string, version: string, request: BuildVariantsRequest): VariantBuild {
    const budget = request.budget ?? variants.budget(model, version);
    if (request.budget) variants.setBudget(model, version, request.budget);
    const profiles = request.profiles ?? BUILT_PROFILES;
    const build: VariantBuild = {
      model,
      version,
      state: 'queued',
      profiles,
      budget,
      pruneSparsity: request.pruneSparsity ?? DEFAULT_PRUNE_SPARSITY,
      calibrationMethod: request.calibrationMethod ?? 'auto',
      progress: { done: 0, total: profiles.length, profile: null, step: null },
      error: null,
      createdAt: now(),
      startedAt: null,
      endedAt: null,
    };
    save(build);
    pump();
    return variants.build(model, version) ?? build;
  }

  /**
   * After a calibration upload: with auto-build, a build that already waits will read the new data;
   * a running one is restarted on it; otherwise the last build's settings are built again.
   */
  async function calibrationUploaded(model: string, version: string): Promise<void> {
    if (!deps.autoBuild) return;
    const existing = variants.build(model, version);
    if (existing?.state === 'queued') return;
    if (current && current.model === model && current.version === version) {
      await current.cancel('requeue');
      return;
    }
    const { profiles, pruneSparsity, calibrationMethod } = existing ?? {};
    // The budget stays the version's (queue reads it); the rest repeats the last build.
    queue(model, version, { ...(profiles ? { profiles } : {}), ...(pruneSparsity !== undefined ? { pruneSparsity } : {}), ...(calibrationMethod ? { calibrationMethod } : {}) });
  }

  return {
    /** Queues a build of the version; 409 while one is queued or running for it. */
    startBuild(model: string, version: string, request: BuildVariantsRequest = {}): VariantBuild {
      versionOf(model, version);
      const existing = variants.build(model, version);
      if (busy(existing)) {
        const since = existing!.startedAt ? `, running since ${existing!.startedAt}` : `, queued at ${existing!.createdAt}`;
        throw new EdgefleetError('CONFLICT', `a variant build of ${model}@${version} is already ${existing!.state} (${existing!.progress.done}/${existing!.progress.total} profiles${since}): wait for it to end`);
      }
      return queue(model, version, request);
    },
    /** After an upload: queue a build of every profile when auto-build is on. */
    versionUploaded(model: string, version: string): void {
      if (deps.autoBuild) queue(model, version, {});
    },
    /**
     * Parses and checks a calibration upload against the version's inputs (400 naming the problem,
     * nothing stored), stores it content-addressed and records its summary; with auto-build, rebuilds.
     */
    async uploadCalibration(model: string, version: string, body: Uint8Array, headerLength: string | undefined): Promise<CalibrationSummary> {
      const v = versionOf(model, version);
      const set = parseCalibration(body, headerLength, v.inputs);
      const summary = await calibrations.store(model, version, set);
      deps.drift?.calibrationStored(model, version, summary);
      await calibrationUploaded(model, version);
      return summary;
    },
    calibration(model: string, version: string): CalibrationSummary {
      versionOf(model, version);
      const summary = variants.calibration(model, version);
      if (!summary) throw new EdgefleetError('NOT_FOUND', `model ${model}@${version} has no calibration data: upload it with PUT /api/v1/models/${model}/versions/${version}/calibration`);
      return summary;
    },
    list(model: string, version: string): VariantList {
      versionOf(model, version);
      return { build: variants.build(model, version) ?? null, variants: variants.list(model, version) };
    },
    get(model: string, version: string, profile: string): VariantDetail {
      versionOf(model, version);
      if (!(PROFILES as readonly string[]).includes(profile)) throw new EdgefleetError('NOT_FOUND', `profile "${profile}" does not exist; profiles are ${PROFILES.join(', ')}`);
      const v = variants.get(model, version, profile as Profile);
      if (!v) throw new EdgefleetError('NOT_FOUND', `variant ${model}@${version}/${profile} does not exist (not built yet)`);
      return v;
    },
    /** Resumes unfinished builds (a 'running' one from a hub that stopped mid-build starts again). */
    start(): void {
      started = true;
      pump();
    },
    /** Cancels the running worker and leaves its build 'running' for the next start. Safe twice. */
    async stop(): Promise<void> {
      started = false;
      await current?.cancel('stop');
    },
  };
}
export type VariantService = ReturnType<typeof createVariantService>;
