import { DEFAULT_TOLERANCE, signManifest, type DriftManifestEntry, type Manifest, type ModelVersion, type TypedTensor } from '@edgefleet/shared';
import type { BuiltVariant } from '../compression/variant-builder.js';
import type { ArtifactStore } from './artifact-store.js';
import { goldenField } from './golden-field.js';
import type { ModelRepo } from './model-repo.js';
import type { VariantRepo } from './variant-repo.js';

/** Drift baselines as variants see them: a manifest signed now names the version's baseline; their files are kept. */
export interface VariantDriftHooks {
  manifestEntry(model: string, version: string): DriftManifestEntry | undefined;
  isReferenced(sha256: string): boolean;
}

/**
 * Where a built variant goes: an accepted one's ONNX file and zstd transfer copy content-addressed in
 * the artifact store, its golden vector (fp32's inputs, its own outputs, its own tolerance) inline or
 * as a golden file, and its manifest signed with the hub key; a rejected or failed one keeps only its
 * numbers and reason. Files written for a variant whose row then fails to save are removed again.
 */
export function createVariantStorage(deps: { models: ModelRepo; variants: VariantRepo; artifacts: ArtifactStore; privateKeyPem: string; drift?: VariantDriftHooks }) {
  const { models, variants, artifacts } = deps;

  /** Removes artifacts that no version, variant or calibration set references any more. */
  async function removeUnreferenced(shas: Array<string | undefined>): Promise<void> {
    for (const sha of shas) {
      if (sha && !models.isReferenced(sha) && !variants.isReferenced(sha) && !deps.drift?.isReferenced(sha)) await artifacts.remove(sha);
    }
  }

  /** Stores one built variant: files, golden, signed manifest for an accepted one; numbers and reason for the others. */
  async function storeVariant(version: ModelVersion, goldenInputs: TypedTensor[], v: BuiltVariant): Promise<void> {
    const { name: model, version: ver } = version;
    const at = new Date().toISOString();
    const base = { model, version: ver, profile: v.profile, reason: v.reason, evaluation: v.evaluation ?? null, createdAt: at, updatedAt: at };
    if (v.state !== 'accepted' || !v.bytes || !v.goldenOutputs) {
      // Rejected and failed variants are never deployed, so their files are not kept; the size still tells.
      const state = v.state === 'accepted' ? 'failed' : v.state;
      const reason = v.state === 'accepted' ? `the worker accepted ${v.profile} but sent no model bytes or golden outputs` : v.reason;
      variants.upsert({ ...base, state, reason, sha256: null, size: v.bytes?.byteLength ?? null, transfer: null, manifest: null });
      return;
    }
    const written: Array<string | undefined> = [];
    try {
      const file = await artifacts.put(v.bytes);
      written.push(file.sha256);
      const transferFile = v.transfer ? await artifacts.put(v.transfer.bytes) : undefined;
      written.push(transferFile?.sha256);
      const transfer = transferFile ? { encoding: 'zstd' as const, size: transferFile.size, sha256: transferFile.sha256 } : null;
      const golden = await goldenField(artifacts, { inputs: goldenInputs, outputs: v.goldenOutputs }, v.tolerance ?? DEFAULT_TOLERANCE);
      written.push(golden.fileSha256);
      // Read after the last await: a baseline stored meanwhile re-signs the rows already there, and this one signs with it.
      const drift = deps.drift?.manifestEntry(model, ver);
      const manifest: Manifest = {
        v: 1,
        model,
        version: ver,
        profile: v.profile,
        sha256: file.sha256,
        size: file.size,
        inputs: version.inputs,
        outputs: version.outputs,
        golden: golden.field,
        ...(transfer ? { transfer } : {}),
        ...(drift ? { drift } : {}),
        createdAt: at,
      };
      variants.upsert({ ...base, state: 'accepted', sha256: file.sha256, size: file.size, transfer, manifest: signManifest(manifest, deps.privateKeyPem) });
    } catch (err) {
      await removeUnreferenced(written);
      throw err;
    }
  }

  return { removeUnreferenced, storeVariant };
}
