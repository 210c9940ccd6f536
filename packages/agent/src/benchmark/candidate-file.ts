import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manifest } from '@edgefleet/shared';
import type { FetchGoldenOptions } from '../models/fetch-golden.js';
import { fetchModelFile } from '../models/fetch-model.js';
import { hasVerifiedFile, modelPath } from '../models/model-files.js';

/** Where candidates are fetched from and with what: a golden file's download options, the same fields. */
export type CandidateFileOptions = FetchGoldenOptions;

export interface CandidateFile {
  /** The verified ONNX file (sha256 and size of the manifest). */
  path: string;
  /** True when it is the installed models' own file, which the benchmark never removes. */
  installed: boolean;
}

/**
 * Where candidates that are not installed are fetched: a state directory of their own, so a
 * benchmark never shares a part file with a deployment downloading the same artifact, and
 * clearing it can never touch an installed model.
 */
export function benchmarkStateDir(stateDir: string): string {
  return join(stateDir, 'benchmark');
}

/**
 * The candidate's model file: the installed one when it is present and verified (used in place),
 * otherwise fetched as deployments fetch (fetchModelFile: free-space check, Range resume, transfer
 * unpacking, sha256 and size checked against the signed manifest) into benchmarkStateDir.
 */
export async function obtainCandidateFile(manifest: Manifest, opts: CandidateFileOptions): Promise<CandidateFile> {
  const installedPath = modelPath(opts.stateDir, manifest.sha256);
  if (await hasVerifiedFile(installedPath, manifest.sha256, manifest.size)) return { path: installedPath, installed: true };
  const path = await fetchModelFile(manifest, {
    stateDir: benchmarkStateDir(opts.stateDir),
    apiUrl: opts.apiUrl,
    auth: opts.auth,
    download: opts.download,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.diskReserveBytes === undefined ? {} : { diskReserveBytes: opts.diskReserveBytes }),
  });
  return { path, installed: false };
}

/** Removes every benchmark download, finished or partial: candidates must not fill the device's disk. */
export async function clearBenchmarkFiles(stateDir: string): Promise<void> {
  await rm(benchmarkStateDir(stateDir), { recursive: true, force: true });
}
