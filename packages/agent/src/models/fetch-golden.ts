import { readFile } from 'node:fs/promises';
import { decodeGoldenFile, decodeTypedTensor, EdgefleetError, type Manifest, type Tolerance, type TypedTensor } from '@edgefleet/shared';
import { fetchArtifactFile, type FetchArtifactOptions } from './fetch-artifact.js';
import { removeFile } from './model-files.js';

export interface GoldenVector {
  inputs: TypedTensor[];
  outputs: TypedTensor[];
  tolerance: Tolerance;
}

/**
 * Where and how an artifact is downloaded: a model's fetch options without its progress callbacks.
 * diskReserveBytes is the free space to leave beyond the golden file's own (default 16 MiB, as for models).
 */
export type FetchGoldenOptions = FetchArtifactOptions;

/**
 * The manifest's golden vector as typed tensors. Inline tensors are decoded; a `golden.ref` file is
 * downloaded like a model (device credentials, Range resume, size and sha256 checked against the
 * signed manifest), read, and deleted: it is needed only for this health check.
 */
export async function fetchGolden(manifest: Manifest, opts: FetchGoldenOptions): Promise<GoldenVector> {
  const { golden } = manifest;
  const ref = golden.ref;
  if (!ref) return { inputs: golden.inputs.map(decodeTypedTensor), outputs: golden.outputs.map(decodeTypedTensor), tolerance: golden.tolerance };
  const path = await fetchArtifactFile(ref, '.golden', `${manifest.model}@${manifest.version}`, 'golden file', opts);
  try {
    let tensors;
    try {
      tensors = decodeGoldenFile(await readFile(path));
    } catch (err) {
      throw new EdgefleetError('INVALID_MODEL', `golden file ${ref.sha256} of ${manifest.model}@${manifest.version} is unusable: ${(err as Error).message}`);
    }
    return { ...tensors, tolerance: golden.tolerance };
  } finally {
    await removeFile(path);
  }
}
