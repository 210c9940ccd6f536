import { createReadStream, createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createBrotliDecompress, createGunzip } from 'node:zlib';
import { EdgefleetError, type Manifest } from '@edgefleet/shared';
import { DEFAULT_DISK_RESERVE_BYTES, ensureFreeSpace, isNoSpaceError } from './disk-space.js';
import type { Downloader } from './download.js';
import { ensureModelsDir, fileDigest, fileSize, hasVerifiedFile, modelPath, modelsDir, partPath, removeFile } from './model-files.js';
import { createSizeLimit } from './size-limit.js';
import { createZstdDecompress } from './zstd.js';

export interface FetchModelOptions {
  stateDir: string;
  apiUrl: string;
  auth: { username: string; password: string };
  download: Downloader;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
  /** Called when the digest check of the model file (or its transfer copy) starts. */
  onVerifying?: () => void;
  /** Free bytes to leave on the disk beyond the model's own (default 16 MiB). */
  diskReserveBytes?: number;
}

export function artifactUrl(apiUrl: string, sha256: string): string {
  return `${apiUrl.replace(/\/+$/, '')}/api/v1/artifacts/${sha256}`;
}

/** Bytes still to come for a download whose part file may already hold some. */
export async function remaining(partFile: string, size: number): Promise<number> {
  return Math.max(0, size - ((await fileSize(partFile)) ?? 0));
}

/**
 * Puts the manifest's model file at <stateDir>/models/<sha256>.onnx and returns its path, only ever
 * with the manifest's sha256 and size: a file already there is checked, a download is checked by
 * the downloader, an unpacked `transfer` copy is checked here. Throws INVALID_MODEL otherwise.
 * Before writing anything it checks that the bytes still to come fit on the disk, and throws
 * DISK_FULL when they do not (also when the disk fills up on the way): nothing partial is left.
 */
export async function fetchModelFile(manifest: Manifest, opts: FetchModelOptions): Promise<string> {
  await ensureModelsDir(opts.stateDir);
  const finalPath = modelPath(opts.stateDir, manifest.sha256);
  if ((await fileSize(finalPath)) === manifest.size) {
    opts.onVerifying?.();
    if (await hasVerifiedFile(finalPath, manifest.sha256, manifest.size)) return finalPath;
  }
  const common = {
    auth: opts.auth,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.onVerifying ? { onVerifying: opts.onVerifying } : {}),
  };
  const transfer = manifest.transfer;
  const what = `${manifest.model}@${manifest.version}`;
  const space = { what, dir: modelsDir(opts.stateDir), reserve: opts.diskReserveBytes ?? DEFAULT_DISK_RESERVE_BYTES };
  if (!transfer) {
    const bytes = await remaining(partPath(opts.stateDir, manifest.sha256), manifest.size);
    await ensureFreeSpace({ ...space, bytes, detail: `${bytes} of its ${manifest.size}-byte file still to download` });
    await opts.download({
      url: artifactUrl(opts.apiUrl, manifest.sha256),
      partPath: partPath(opts.stateDir, manifest.sha256),
      finalPath,
      sha256: manifest.sha256,
      size: manifest.size,
      ...common,
    });
    return finalPath;
  }
  const packedPath = join(modelsDir(opts.stateDir), `${transfer.sha256}.${transfer.encoding}`);
  const packed = await hasVerifiedFile(packedPath, transfer.sha256, transfer.size);
  const toDownload = packed ? 0 : await remaining(partPath(opts.stateDir, transfer.sha256), transfer.size);
  await ensureFreeSpace({
    ...space,
    bytes: toDownload + manifest.size,
    detail: `${toDownload} bytes of its ${transfer.encoding} transfer file still to download and ${manifest.size} to unpack`,
  });
  if (!packed) {
    await opts.download({
      url: artifactUrl(opts.apiUrl, transfer.sha256),
      partPath: partPath(opts.stateDir, transfer.sha256),
      finalPath: packedPath,
      sha256: transfer.sha256,
      size: transfer.size,
      ...common,
    });
  }
  await unpackTransfer(manifest, transfer.encoding, packedPath, finalPath, opts);
  return finalPath;
}

type TransferEncoding = NonNullable<Manifest['transfer']>['encoding'];

function decoderFor(encoding: TransferEncoding): Transform {
  switch (encoding) {
    case 'gzip':
      return createGunzip();
    case 'br':
      return createBrotliDecompress();
    case 'zstd':
      return createZstdDecompress();
  }
}

/**
 * Unpacks the verified transfer copy into place as a stream, checked against the manifest; the
 * transfer copy and any partial output are deleted either way. Output beyond the manifest's size
 * stops the unpacking at once: the free-space check counted exactly that many bytes.
 */
async function unpackTransfer(manifest: Manifest, encoding: TransferEncoding, packedPath: string, finalPath: string, opts: FetchModelOptions): Promise<void> {
  const what = `${manifest.model}@${manifest.version}`;
  const tmpPath = `${finalPath}.tmp`;
  try {
    try {
      await pipeline(
        createReadStream(packedPath),
        decoderFor(encoding),
        createSizeLimit(manifest.size),
        createWriteStream(tmpPath, { mode: 0o600 }),
        ...(opts.signal ? [{ signal: opts.signal }] : []),
      );
    } catch (err) {
      // A superseded or stopping deployment: the caller knows why, and it is no fault of the file.
      if (opts.signal?.aborted) throw err;
      if (isNoSpaceError(err)) {
        throw new EdgefleetError('DISK_FULL', `no space left in ${modelsDir(opts.stateDir)} to unpack the ${encoding} transfer file of ${what}: ${(err as Error).message}`);
      }
      throw new EdgefleetError('INVALID_MODEL', `cannot unpack the ${encoding} transfer file of ${what}: ${(err as Error).message}`);
    }
    opts.onVerifying?.();
    const digest = await fileDigest(tmpPath);
    if (digest.sha256 !== manifest.sha256 || digest.size !== manifest.size) {
      throw new EdgefleetError(
        'INVALID_MODEL',
        `unpacked ${encoding} file has sha256 ${digest.sha256} and ${digest.size} bytes, expected ${manifest.sha256} and ${manifest.size} bytes`,
      );
    }
    await rename(tmpPath, finalPath);
  } finally {
    await removeFile(tmpPath);
    await removeFile(packedPath);
  }
}
