import type { ResourceLimits } from 'node:worker_threads';
import {
  DEFAULT_TOLERANCE,
  EdgefleetError,
  encodeGoldenFile,
  encodeTypedTensor,
  needsGoldenFile,
  signManifest,
  type Golden,
  type Manifest,
  type ModelVersion,
} from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { ArtifactStore } from './artifact-store.js';
import { checkModel, type CheckResult } from './model-checker.js';
import type { ModelRepo } from './model-repo.js';

/** Model registry: validate an upload (decode, load and run in onnxruntime), store it content-addressed, sign its manifest. */
export interface ModelServiceDeps {
  repo: ModelRepo;
  artifacts: ArtifactStore;
  privateKeyPem: string;
  log: Logger;
  /** The check worker's heap limits (default MODEL_CHECK_LIMITS). */
  checkLimits?: ResourceLimits;
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

  /**
   * Small golden tensors go inline; when together they are over GOLDEN_INLINE_MAX_BYTES they all go in
   * one content-addressed golden file that the manifest references, so manifests stay small.
   */
  async function goldenFor(golden: CheckResult): Promise<{ field: Golden; fileSha256?: string }> {
    const tolerance = DEFAULT_TOLERANCE;
    if (!needsGoldenFile([...golden.inputs, ...golden.outputs])) {
      return { field: { inputs: golden.inputs.map(encodeTypedTensor), outputs: golden.outputs.map(encodeTypedTensor), tolerance } };
    }
    const file = await artifacts.put(encodeGoldenFile(golden));
    return { field: { inputs: [], outputs: [], tolerance, ref: { sha256: file.sha256, size: file.size } }, fileSha256: file.sha256 };
  }

  return {
    /** `name` and `version` are checked by the route against shared's ModelName / VersionName. */
    async upload(name: string, version: string, bytes: Uint8Array): Promise<ModelVersion> {
      const key = `${name}@${version}`;
      if (repo.get(name, version) || inflight.has(key)) throw new EdgefleetError('CONFLICT', `model ${key} already exists: upload a new version`);
      inflight.add(key);
      try {
        const checked = await validate(bytes);
        const { signature } = checked;
        const createdAt = new Date().toISOString();
        const stored = await artifacts.put(bytes);
        const goldenField = await goldenFor(checked);
        const manifest: Manifest = {
          v: 1,
          model: name,
          version,
          profile: 'fp32',
          sha256: stored.sha256,
          size: stored.size,
          inputs: signature.inputs,
          outputs: signature.outputs,
          golden: goldenField.field,
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
        };
        try {
          repo.insert(entry);
        } catch (err) {
          for (const sha of [stored.sha256, goldenField.fileSha256]) {
            if (sha && !repo.isReferenced(sha)) await artifacts.remove(sha);
          }
          throw err;
        }
        log.info({ model: name, version, sha256: stored.sha256, size: stored.size, goldenFile: goldenField.fileSha256 }, 'model version stored');
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
