import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { SignedManifest } from '@edgefleet/shared';

/**
 * Model files are content-addressed: <stateDir>/models/<sha256>.onnx, downloads in progress
 * <sha256>.part, and beside each activated file its signed manifest <sha256>.manifest.json, so the
 * agent can verify and serve its models again when agent.db is lost.
 */
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

/** What is kept beside an activated model file: enough to verify it with the pinned hub key and serve it. */
export const ManifestSidecar = Type.Object({
  /** When this file last became its model's active version (ms since epoch): the latest one is served. */
  activatedAt: Type.Number({ minimum: 0 }),
  signed: SignedManifest,
});
export type ManifestSidecar = Static<typeof ManifestSidecar>;
const sidecarCheck = Compile(ManifestSidecar);

const SIDECAR_SUFFIX = '.manifest.json';

function manifestSidecarPath(stateDir: string, sha256: string): string {
  return join(modelsDir(stateDir), `${sha256}${SIDECAR_SUFFIX}`);
}

/** Written atomically (temp file, rename): a crash leaves the old sidecar or the new one. */
export async function writeManifestSidecar(stateDir: string, sidecar: ManifestSidecar): Promise<void> {
  const path = manifestSidecarPath(stateDir, sidecar.signed.manifest.sha256);
  const tmp = `${path}.tmp`;
  await writeFile(tmp, `${JSON.stringify(sidecar)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}

/** Every sidecar in the models directory, each parsed and checked against its schema or with the reason it is unusable. */
export async function readManifestSidecars(
  stateDir: string,
): Promise<Array<{ path: string; sha256: string; sidecar?: ManifestSidecar; problem?: string }>> {
  let names: string[];
  try {
    names = await readdir(modelsDir(stateDir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: Array<{ path: string; sha256: string; sidecar?: ManifestSidecar; problem?: string }> = [];
  for (const name of names.filter((n) => n.endsWith(SIDECAR_SUFFIX)).sort()) {
    const path = join(modelsDir(stateDir), name);
    const sha256 = name.slice(0, -SIDECAR_SUFFIX.length);
    try {
      const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
      if (sidecarCheck.Check(parsed)) out.push({ path, sha256, sidecar: parsed });
      else out.push({ path, sha256, problem: 'it does not match the sidecar schema' });
    } catch (err) {
      out.push({ path, sha256, problem: (err as Error).message });
    }
  }
  return out;
}
