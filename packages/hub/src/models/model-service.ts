import { DEFAULT_TOLERANCE, EdgefleetError, signManifest, type Manifest, type ModelVersion } from '@edgefleet/shared';
import { decodeModel, readSignature } from '@edgefleet/shared/onnx';
import type { Logger } from 'pino';
import type { ArtifactStore } from './artifact-store.js';
import { checkModel } from './model-checker.js';
import type { ModelRepo } from './model-repo.js';

/** Model registry: validate an upload (decode, load and run in onnxruntime), store it content-addressed, sign its manifest. */
export function createModelService(deps: { repo: ModelRepo; artifacts: ArtifactStore; privateKeyPem: string; log: Logger }) {
  const { repo, artifacts, log } = deps;
  const inflight = new Set<string>();

  async function validate(bytes: Uint8Array) {
    try {
      const signature = readSignature(decodeModel(bytes));
      if (signature.inputs.length === 0) throw new Error('the graph declares no inputs');
      if (signature.outputs.length === 0) throw new Error('the graph declares no outputs');
      const golden = await checkModel(bytes, signature.inputs);
      return { signature, golden };
    } catch (err) {
      throw new EdgefleetError('INVALID_MODEL', `invalid model: ${(err as Error).message}`, { cause: err });
    }
  }

  return {
    /** `name` and `version` are checked by the route against shared's ModelName / VersionName. */
    async upload(name: string, version: string, bytes: Uint8Array): Promise<ModelVersion> {
      const key = `${name}@${version}`;
      if (repo.get(name, version) || inflight.has(key)) throw new EdgefleetError('CONFLICT', `model ${key} already exists: upload a new version`);
      inflight.add(key);
      try {
        const { signature, golden } = await validate(bytes);
        const createdAt = new Date().toISOString();
        const stored = await artifacts.put(bytes);
        const manifest: Manifest = {
          v: 1,
          model: name,
          version,
          profile: 'fp32',
          sha256: stored.sha256,
          size: stored.size,
          inputs: signature.inputs,
          outputs: signature.outputs,
          golden: { inputs: golden.inputs, outputs: golden.outputs, tolerance: DEFAULT_TOLERANCE },
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
          if (!repo.isReferenced(stored.sha256)) await artifacts.remove(stored.sha256);
          throw err;
        }
        log.info({ model: name, version, sha256: stored.sha256, size: stored.size }, 'model version stored');
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
