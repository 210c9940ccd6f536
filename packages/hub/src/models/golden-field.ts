import { readFile } from 'node:fs/promises';
import {
  decodeGoldenFile,
  decodeTypedTensor,
  encodeGoldenFile,
  encodeTypedTensor,
  needsGoldenFile,
  type Golden,
  type GoldenTensors,
  type Manifest,
  type Tolerance,
  type TypedTensor,
} from '@edgefleet/shared';
import type { ArtifactStore } from './artifact-store.js';

/**
 * The manifest's golden field for these tensors. Small golden tensors go inline; when together they
 * are over GOLDEN_INLINE_MAX_BYTES they all go in one content-addressed golden file that the manifest
 * references, so manifests (and every device's `desired` document) stay small. The fp32 version and
 * each variant use this one function, so a variant's golden travels exactly as its version's does.
 */
export async function goldenField(artifacts: ArtifactStore, golden: GoldenTensors, tolerance: Tolerance): Promise<{ field: Golden; fileSha256?: string }> {
  if (!needsGoldenFile([...golden.inputs, ...golden.outputs])) {
    return { field: { inputs: golden.inputs.map(encodeTypedTensor), outputs: golden.outputs.map(encodeTypedTensor), tolerance } };
  }
  const file = await artifacts.put(encodeGoldenFile(golden));
  return { field: { inputs: [], outputs: [], tolerance, ref: { sha256: file.sha256, size: file.size } }, fileSha256: file.sha256 };
}

/** The golden inputs a manifest carries, inline or from its golden file in the artifact store. */
export async function goldenInputsOf(artifacts: ArtifactStore, manifest: Manifest): Promise<TypedTensor[]> {
  const ref = manifest.golden.ref;
  if (!ref) return manifest.golden.inputs.map(decodeTypedTensor);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(artifacts.pathOf(ref.sha256));
  } catch (err) {
    throw new Error(`golden file ${ref.sha256} of ${manifest.model}@${manifest.version} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  return decodeGoldenFile(bytes).inputs;
}
