import { join } from 'node:path';
import { DEFAULT_DISK_RESERVE_BYTES, ensureFreeSpace } from './disk-space.js';
import { artifactUrl, remaining, type FetchModelOptions } from './fetch-model.js';
import { ensureModelsDir, modelsDir, partPath } from './model-files.js';

/** Where and how an artifact is downloaded: a model's fetch options without its progress callbacks. */
export type FetchArtifactOptions = Pick<FetchModelOptions, 'stateDir' | 'apiUrl' | 'auth' | 'download' | 'signal' | 'diskReserveBytes'>;

export interface ArtifactRef {
  sha256: string;
  size: number;
}

/**
 * Downloads a signed manifest's side artifact (golden file, drift baseline) into the models
 * directory as <sha256><suffix> and returns its path: device credentials, Range resume, and the
 * size and sha256 checked against the reference by the downloader. The free space is checked
 * before a byte is written, as for models. `what` and `kind` name it in a DISK_FULL error.
 */
export async function fetchArtifactFile(ref: ArtifactRef, suffix: string, what: string, kind: string, opts: FetchArtifactOptions): Promise<string> {
  await ensureModelsDir(opts.stateDir);
  const path = join(modelsDir(opts.stateDir), `${ref.sha256}${suffix}`);
  const part = partPath(opts.stateDir, ref.sha256);
  const bytes = await remaining(part, ref.size);
  await ensureFreeSpace({
    what,
    dir: modelsDir(opts.stateDir),
    bytes,
    detail: `${bytes} of its ${ref.size}-byte ${kind} still to download`,
    reserve: opts.diskReserveBytes ?? DEFAULT_DISK_RESERVE_BYTES,
  });
  await opts.download({
    url: artifactUrl(opts.apiUrl, ref.sha256),
    partPath: part,
    finalPath: path,
    sha256: ref.sha256,
    size: ref.size,
    auth: opts.auth,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return path;
}
