import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './processes.js';

const run = promisify(execFile);

export interface BuiltBundle {
  /** The unpacked bundle directory. */
  dir: string;
  tarball: string;
  manifest: { version: string; arch: string; nodeAbi: string; entry: string; files: Record<string, string> };
}

/** Runs the real build script (after `tsc -b`, which the test run needs anyway) into `outDir`; `tarball: false` skips the gzip. */
export async function buildAgentBundle(outDir: string, opts: { tarball?: boolean } = {}): Promise<BuiltBundle> {
  const args = [join(REPO_ROOT, 'scripts/build-agent-bundle.mjs'), '--out', outDir, ...(opts.tarball === false ? ['--no-tarball'] : [])];
  const { stdout } = await run(process.execPath, args, { cwd: REPO_ROOT });
  const dir = stdout.split('\n')[0]!.trim();
  const manifest = JSON.parse(await readFile(join(dir, 'bundle.json'), 'utf8')) as BuiltBundle['manifest'];
  return { dir, tarball: `${dir}.tar.gz`, manifest };
}

/** One entry of a directory tree as a snapshot sees it. */
export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: string;
  uid: number;
  gid: number;
  mtimeMs: number;
  /** sha256 of a file, target of a symlink. */
  content?: string;
}

/** Every path under `root` (relative) with type, mode, owner, mtime and content hash. */
export async function snapshotTree(root: string, rel = ''): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  for (const name of (await readdir(join(root, rel))).sort()) {
    const path = rel ? `${rel}/${name}` : name;
    const full = join(root, path);
    const st = await lstat(full);
    const base = { mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs };
    if (st.isSymbolicLink()) out.set(path, { type: 'symlink', ...base, content: await readlink(full) });
    else if (st.isDirectory()) {
      out.set(path, { type: 'dir', ...base });
      for (const [p, e] of await snapshotTree(root, path)) out.set(p, e);
    } else out.set(path, { type: 'file', ...base, content: createHash('sha256').update(await readFile(full)).digest('hex') });
  }
  return out;
}
