import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { EdgefleetError } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { isNoSpaceError } from './disk-space.js';
import { pinnedFetch, type Fetch } from '../tls/pinned-ca.js';
import { fileDigest, fileSize, removeFile } from './model-files.js';

export interface DownloadRequest {
  url: string;
  /** Where bytes accumulate; kept across cut-off connections and restarts for Range resume. */
  partPath: string;
  /** Where the verified file ends up (renamed from the part file). */
  finalPath: string;
  sha256: string;
  size: number;
  auth: { username: string; password: string };
  signal?: AbortSignal;
  /** Fraction of the file present, 0..1; called per chunk, the caller throttles. */
  onProgress?: (fraction: number) => void;
  /** Called when every byte is present and the digest check starts. */
  onVerifying?: () => void;
}

export interface DownloaderOptions {
  logger: Logger;
  /** Attempts after the first one for a cut-off or failed transfer. */
  retries?: number;
  /** First back-off delay; doubles per attempt, capped at 30 s. */
  retryDelayMs?: number;
  /** The hub's pinned CA (PEM): artifacts over HTTPS trust it and nothing else. */
  ca?: string | undefined;
}

/** `fetch`: the downloader's pinned-TLS fetch, for the agent's other calls to the hub's API (field sample uploads). */
export type Downloader = ((req: DownloadRequest) => Promise<void>) & { readonly fetch?: Fetch };

/** Not worth retrying within this download (auth, missing artifact, bad content). */
class FatalDownloadError extends EdgefleetError {}

function parseContentRangeStart(header: string | null): number | undefined {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header ?? '');
  return m ? Number(m[1]) : undefined;
}

/** Throws, naming the problem, unless the answer is the whole file (200) or the asked-for rest of it (206). */
async function checkResponse(res: Response, req: DownloadRequest, offset: number): Promise<void> {
  if (res.status === 416) {
    // The part file does not fit what the server has: start over.
    await res.body?.cancel();
    await removeFile(req.partPath);
    throw new EdgefleetError('RANGE_NOT_SATISFIABLE', `${req.url} refused Range bytes=${offset}-; restarting from zero`);
  }
  if (res.status === 401 || res.status === 403 || res.status === 404) {
    await res.body?.cancel();
    throw new FatalDownloadError(
      res.status === 404 ? 'NOT_FOUND' : 'UNAUTHORIZED',
      `artifact download ${req.url} answered HTTP ${res.status}, expected 200 or 206`,
    );
  }
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel();
    throw new EdgefleetError('UNAVAILABLE', `artifact download ${req.url} answered HTTP ${res.status}, expected 200 or 206`);
  }
  if (res.status === 206 && parseContentRangeStart(res.headers.get('content-range')) !== offset) {
    await res.body?.cancel();
    await removeFile(req.partPath);
    throw new EdgefleetError('UNAVAILABLE', `${req.url} answered Content-Range "${res.headers.get('content-range')}" for bytes=${offset}-; restarting from zero`);
  }
}

/** Writes the body into the part file from `offset`; returns the bytes the file then holds, or 'oversize'. */
async function writeBody(body: NonNullable<Response['body']>, req: DownloadRequest, offset: number): Promise<number | 'oversize'> {
  const fh = await open(req.partPath, offset === 0 ? 'w' : 'a', 0o600);
  let received = offset;
  try {
    for await (const chunk of body) {
      // No byte past the signed size reaches the disk: a server sending more is wrong, not slow.
      if (received + chunk.byteLength > req.size) return 'oversize';
      // A write near a full disk can be short; the next one then fails with ENOSPC.
      for (let done = 0; done < chunk.byteLength; ) done += (await fh.write(chunk, done)).bytesWritten;
      received += chunk.byteLength;
      req.onProgress?.(received / req.size);
    }
    await fh.sync();
    return received;
  } finally {
    await fh.close();
  }
}

/**
 * Downloads with HTTP Range resume: an existing part file is continued with `Range: bytes=<n>-`
 * (a 200 answer restarts from zero), a cut-off transfer is retried with back-off, and the file is
 * renamed into place only after its size and sha256 match. A full disk ends the download at once
 * with DISK_FULL and deletes the part file: resuming it later would need the same space again, and
 * the space it holds is what everything else on the device is short of.
 */
export function createDownloader(opts: DownloaderOptions): Downloader {
  const log = opts.logger.child({ module: 'download' });
  const retries = opts.retries ?? 5;
  const baseDelay = opts.retryDelayMs ?? 1000;
  // Lives as long as the agent: one dispatcher keeps its TLS sessions across downloads.
  const { fetch } = pinnedFetch(opts.ca);

  async function attempt(req: DownloadRequest): Promise<void> {
    let offset = (await fileSize(req.partPath)) ?? 0;
    if (offset > req.size) {
      await removeFile(req.partPath);
      offset = 0;
    }
    if (offset === req.size) return;
    const authorization = `Basic ${Buffer.from(`${req.auth.username}:${req.auth.password}`).toString('base64')}`;
    const headers: Record<string, string> = { authorization };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await fetch(req.url, { headers, signal: req.signal ?? null });
    await checkResponse(res, req, offset);
    if (res.status === 200) offset = 0;
    if (!res.body) throw new EdgefleetError('UNAVAILABLE', `artifact download ${req.url} has no body`);
    const received = await writeBody(res.body, req, offset);
    if (received === 'oversize') {
      // Not retried, so a part file kept for resume would only hold the disk until the next assignment.
      await removeFile(req.partPath);
      throw new FatalDownloadError('INVALID_MODEL', `${req.url} sent more than the manifest's ${req.size} bytes`);
    }
    if (received < req.size) {
      throw new EdgefleetError('UNAVAILABLE', `${req.url} ended after ${received} of ${req.size} bytes`);
    }
  }

  return Object.assign(async function download(req: DownloadRequest): Promise<void> {
    const resumedAt = (await fileSize(req.partPath)) ?? 0;
    let restartedAfterMismatch = false;
    for (let n = 0; ; n++) {
      try {
        await attempt(req);
        req.onVerifying?.();
        const digest = await fileDigest(req.partPath);
        if (digest.sha256 !== req.sha256 || digest.size !== req.size) {
          await removeFile(req.partPath);
          // A resumed part file may hold bytes from a broken earlier run: one clean retry from zero.
          if (resumedAt > 0 && !restartedAfterMismatch) {
            restartedAfterMismatch = true;
            log.warn({ url: req.url }, 'digest mismatch after resume; downloading again from zero');
            continue;
          }
          throw new FatalDownloadError(
            'INVALID_MODEL',
            `downloaded file has sha256 ${digest.sha256} and ${digest.size} bytes, expected ${req.sha256} and ${req.size} bytes`,
          );
        }
        await rename(req.partPath, req.finalPath);
        return;
      } catch (err) {
        if (req.signal?.aborted) throw err;
        if (isNoSpaceError(err)) {
          const written = (await fileSize(req.partPath)) ?? 0;
          await removeFile(req.partPath);
          log.warn({ url: req.url, written, size: req.size, err: (err as Error).message }, 'disk full while downloading; part file deleted');
          throw new EdgefleetError(
            'DISK_FULL',
            `no space left in ${dirname(req.partPath)} while downloading ${req.url}: ${written} of ${req.size} bytes were written, the partial file was deleted`,
            { cause: err },
          );
        }
        if (err instanceof FatalDownloadError) throw new EdgefleetError(err.code, err.message);
        if (n >= retries) {
          throw new EdgefleetError('UNAVAILABLE', `download of ${req.url} failed after ${n + 1} attempts: ${(err as Error).message}`, { cause: err });
        }
        const wait = Math.min(30_000, baseDelay * 2 ** n);
        const partSize = (await fileSize(req.partPath)) ?? 0;
        log.warn({ url: req.url, attempt: n + 1, partSize, retryInMs: wait, err: (err as Error).message }, 'download interrupted; will resume');
        await delay(wait, undefined, req.signal ? { signal: req.signal } : {});
      }
    }
  }, { fetch });
}
