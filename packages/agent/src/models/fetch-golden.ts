import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeGoldenFile, decodeTypedTensor, EdgefleetError, type Manifest, type Tolerance, type TypedTensor } from '@edgefleet/shared';
import { DEFAULT_DISK_RESERVE_BYTES, ensureFreeSpace } from './disk-space.js';
import { artifactUrl, remaining, type FetchModelOptions } from './fetch-model.js';
import { ensureModelsDir, modelsDir, partPath, removeFile } from './model-files.js';

export interface GoldenVector {
  inputs: TypedTensor[];
  outputs: TypedTensor[];
  tolerance: Tolerance;
}

/**
 * Where and how an artifact is downloaded: a model's fetch options without its progress callbacks.
 * diskReserveBytes is the free space to leave beyond the golden file's own (default 16 MiB, as for models).
 */
export type FetchGoldenOptions = Pick<FetchModelOptions, 'stateDir' | 'apiUrl' | 'auth' | 'download' | 'signal' | 'diskReserveBytes'>;

/**
 * The manifest's golden vector as typed tensors. Inline tensors are decoded; a `golden.ref` file is
 * downloaded like a model (device credentials, Range resume, size and sha256 checked against the
 * signed manifest), read, and deleted: it is needed only for this health check.
 */
export async function fetchGolden(manifest: Manifest, opts: FetchGoldenOptions): Promise<GoldenVector> {
  const { golden } = manifest;
  const ref = golden.ref;
  if (!ref) return { inputs: golden.inputs.map(decodeTypedTensor), outputs: golden.outputs.map(decodeTypedTensor), tolerance: golden.tolerance };
  await ensureModelsDir(opts.stateDir);
  const path = join(modelsDir(opts.stateDir), `${ref.sha256}.golden`);
  const part = partPath(opts.stateDir, ref.sha256);
  // Checked before a byte is written, like the model file: a golden file can be image-sized too.
  const bytes = await remaining(part, ref.size);
  await ensureFreeSpace({
    what: `${manifest.model}@${manifest.version}`,
    dir: modelsDir(opts.stateDir),
    bytes,
    detail: `${bytes} of its ${ref.size}-byte golden file still to download`,
    reserve: opts.diskReserveBytes ?? DEFAULT_DISK_RESERVE_BYTES,
  });
  try {
    await opts.download({
      url: artifactUrl(opts.apiUrl, ref.sha256),
      partPath: part,
      finalPath: path,
      sha256: ref.sha256,
      size: ref.size,
      auth: opts.auth,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
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
