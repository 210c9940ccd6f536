import type { ResourceLimits } from 'node:worker_threads';
import { DEFAULT_TOLERANCE, EdgefleetError, signManifest, type AccuracyBudget, type Manifest, type ModelVersion } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { ArtifactStore } from './artifact-store.js';
import { goldenField } from './golden-field.js';
import { checkModel, type CheckResult } from './model-checker.js';
import type { ModelRepo } from './model-repo.js';
import type { VariantRepo } from './variant-repo.js';

/** Model registry: validate an upload (decode, load and run in onnxruntime), store it content-addressed, sign its manifest. */
export interface ModelServiceDeps {
  repo: ModelRepo;
  variants: VariantRepo;
  artifacts: ArtifactStore;
  privateKeyPem: string;
  log: Logger;
  /** The check worker's heap limits (default MODEL_CHECK_LIMITS). */
  checkLimits?: ResourceLimits;
  /** Called once a version is stored (the variant service queues its build when configured to). */
  afterUpload?: (name: string, version: string) => void;
}

export function createModelService(deps: ModelServiceDeps) {
  const { repo, artifacts, log } = deps;
  const inflight = new Set<string>();

  /** Decodes, loads and runs the model, all in the heap-limited check worker; any failure is INVALID_MODEL. */
  async function validate(bytes: Uint8Array): Promise<CheckResult> {
    try {
      return await checkModel(bytes, deps.checkLimits);
    } catch (err) {
      throw new EdgefleetError('INVALID_MODEL', `invalid model: ${(err as Error).message}`, { cause: err });
    }
  }

  return {
    /** `name` and `version` are checked by the route against shared's ModelName / VersionName. */
    async upload(name: string, version: string, bytes: Uint8Array, budget?: AccuracyBudget): Promise<ModelVersion> {
      const key = `${name}@${version}`;
      if (repo.get(name, version) || inflight.has(key)) throw new EdgefleetError('CONFLICT', `model ${key} already exists: upload a new version`);
      inflight.add(key);
      try {
        const checked = await validate(bytes);
        const { signature } = checked;
        const createdAt = new Date().toISOString();
        const stored = await artifacts.put(bytes);
        const golden = await goldenField(artifacts, checked, DEFAULT_TOLERANCE);
        const manifest: Manifest = {
          v: 1,
          model: name,
          version,
          profile: 'fp32',
          sha256: stored.sha256,
          size: stored.size,
          inputs: signature.inputs,
          outputs: signature.outputs,
          golden: golden.field,
          createdAt,
        };
        const entry: ModelVersion = {
          name,
          version,
          sha256: stored.sha256,
          size: stored.size,
          inputs: signature.inputs,
          outputs: signature.outputs,
          createdAt,
          manifest: signManifest(manifest, deps.privateKeyPem),
          ...(budget && Object.keys(budget).length > 0 ? { budget } : {}),
        };
        try {
          // fp32 is a variant like the others (accepted, no evaluation: it is the reference), written with its version.
          repo.transaction(() => {
            repo.insert(entry);
            deps.variants.upsert({
              model: name,
              version,
              profile: 'fp32',
              state: 'accepted',
              reason: null,
              sha256: stored.sha256,
              size: stored.size,
              transfer: null,
              evaluation: null,
              createdAt,
              updatedAt: createdAt,
              manifest: entry.manifest,
            });
          });
        } catch (err) {
          for (const sha of [stored.sha256, golden.fileSha256]) {
            if (sha && !repo.isReferenced(sha) && !deps.variants.isReferenced(sha)) await artifacts.remove(sha);
          }
          throw err;
        }
        log.info({ model: name, version, sha256: stored.sha256, size: stored.size, goldenFile: golden.fileSha256, budget }, 'model version stored');
        try {
          deps.afterUpload?.(name, version);
        } catch (err) {
          // The version is stored; a build that could not be queued can be started through the API.
          log.error({ err, model: name, version }, 'queueing the variant build after upload failed');
        }
        return entry;
      } finally {
        inflight.delete(key);
      }
    },
    get(name: string, version: string): ModelVersion {
      const v = repo.get(name, version);
      if (!v) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${name}@${version} does not exist`);
      return v;
    },
    versions(name: string): ModelVersion[] {
      const list = repo.versions(name);
      if (list.length === 0) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${name} does not exist`);
      return list;
    },
    list() {
      return repo.list();
    },
  };
}
export type ModelService = ReturnType<typeof createModelService>;
