import { baselineFromReference, extractionFeatureNames, planExtraction, signManifest, type DriftBaseline, type DriftManifestEntry, type ModelAssignment } from '@edgefleet/shared';
import { decodeModel, readSignature } from '@edgefleet/shared/onnx';
import { sha256Of } from './manifests.js';

/**
 * A drift baseline for a model as the hub would build it: the shared extraction plan over the
 * model's signature, and reference columns of `rows` values (inputs spread over 0..1, class outputs
 * over every class), so the agent's checks see the real thing.
 */
export function baselineFor(bytes: Uint8Array, rows = 200): DriftBaseline {
  const sig = readSignature(decodeModel(bytes));
  const extraction = planExtraction(sig.inputs, sig.outputs);
  const names = extractionFeatureNames(extraction);
  const classes = new Map(extraction.outputs.filter((e) => e.mode === 'class').map((e) => [`${e.tensor}.class`, e.size ?? 2]));
  const column = (name: string, k: number) => {
    const n = classes.get(name);
    const values = Float64Array.from({ length: rows }, (_, r) => (n === undefined ? ((r * 37 + k * 11) % 101) / 100 : r % n));
    return n === undefined ? { name, values } : { name, values, categories: Array.from({ length: n }, (_, i) => i) };
  };
  const built = baselineFromReference({ features: names.features.map(column), outputs: names.outputs.map(column) });
  return { ...built, extraction };
}

/** The baseline as an artifact (its JSON bytes) and its manifest entry, inline or by reference only. */
export function baselineArtifact(baseline: DriftBaseline, inline: boolean): { bytes: Uint8Array; entry: DriftManifestEntry } {
  const bytes = new TextEncoder().encode(JSON.stringify(baseline));
  return { bytes, entry: { sha256: sha256Of(bytes), size: bytes.byteLength, ...(inline ? { baseline } : {}) } };
}

/** The assignment with `drift` added to its manifest, signed again with the rig's key. */
export function withDrift(a: ModelAssignment, entry: DriftManifestEntry, privateKeyPem: string): ModelAssignment {
  return { ...a, manifest: signManifest({ ...a.manifest.manifest, drift: entry }, privateKeyPem) };
}
