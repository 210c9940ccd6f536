import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Model files are content-addressed: <stateDir>/models/<sha256>.onnx, downloads in progress <sha256>.part. */
export function modelsDir(stateDir: string): string {
  return join(stateDir, 'models');
}

export function modelPath(stateDir: string, sha256: string): string {
  return join(modelsDir(stateDir), `${sha256}.onnx`);
}

export function partPath(stateDir: string, sha256: string): string {
  return join(modelsDir(stateDir), `${sha256}.part`);
}

export async function ensureModelsDir(stateDir: string): Promise<void> {
  await mkdir(modelsDir(stateDir), { recursive: true, mode: 0o700 });
}

/** Streams the file through sha256 (no whole-file buffer: models can be hundreds of MB). */
export async function fileDigest(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).byteLength;
  }
  return { sha256: hash.digest('hex'), size };
}

export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** True when the file exists with exactly this digest and size. */
export async function hasVerifiedFile(path: string, sha256: string, size: number): Promise<boolean> {
  if ((await fileSize(path)) !== size) return false;
  const digest = await fileDigest(path);
  return digest.sha256 === sha256 && digest.size === size;
}

export async function removeFile(path: string): Promise<void> {
  await rm(path, { force: true });
}
