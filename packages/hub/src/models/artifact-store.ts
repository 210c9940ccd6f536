import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Content-addressed files under `<dataDir>/artifacts/<sha256>`; written to a temp name, then renamed. */
export function createArtifactStore(dataDir: string) {
  const dir = join(dataDir, 'artifacts');
  mkdirSync(dir, { recursive: true });
  const pathOf = (sha256: string) => join(dir, sha256);
  return {
    dir,
    pathOf,
    async put(bytes: Uint8Array): Promise<{ sha256: string; size: number; path: string }> {
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const path = pathOf(sha256);
      const tmp = join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
      try {
        await writeFile(tmp, bytes, { mode: 0o644 });
        await rename(tmp, path);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
      return { sha256, size: bytes.byteLength, path };
    },
    async remove(sha256: string): Promise<void> {
      await rm(pathOf(sha256), { force: true });
    },
    /** Size of a stored artifact, or undefined when absent. */
    sizeOf(sha256: string): number | undefined {
      try {
        return statSync(pathOf(sha256)).size;
      } catch {
        return undefined;
      }
    },
  };
}
export type ArtifactStore = ReturnType<typeof createArtifactStore>;
