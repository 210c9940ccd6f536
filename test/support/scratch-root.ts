import { spawn, spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TreeEntry } from './agent-bundle.js';

// A scratch root for install.sh/uninstall.sh --root: the files a Debian device has that they touch.
export const PASSWD = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n';
export const GROUP = 'root:x:0:\ndaemon:x:1:\n';
const SHADOW = 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n';
const GSHADOW = 'root:*::\ndaemon:*::\n';

/** A minimal root file system: what install.sh expects of a Debian device. */
export async function makeScratchRoot(root: string): Promise<void> {
  for (const dir of ['etc/systemd/system', 'opt', 'var/lib', 'usr/sbin']) await mkdir(join(root, dir), { recursive: true });
  await writeFile(join(root, 'etc/passwd'), PASSWD, { mode: 0o644 });
  await writeFile(join(root, 'etc/group'), GROUP, { mode: 0o644 });
  await writeFile(join(root, 'etc/shadow'), SHADOW, { mode: 0o640 });
  await writeFile(join(root, 'etc/gshadow'), GSHADOW, { mode: 0o640 });
  // The admin's own backup: must be left exactly as it was.
  await writeFile(join(root, 'etc/passwd-'), PASSWD, { mode: 0o600 });
}

export interface ScriptRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

const scriptEnv = (extra: Record<string, string> = {}) => ({ ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin`, ...extra });

/** Runs `command args` (the script itself, or `sh script ...`) to the end. */
export function runScript(command: string, args: string[], opts: { cwd?: string; input?: string; env?: Record<string, string> } = {}): ScriptRun {
  const r = spawnSync(command, args, { encoding: 'utf8', env: scriptEnv(opts.env), ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.input !== undefined ? { input: opts.input } : {}) });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `script args` and SIGKILLs its whole process group as soon as stdout contains `marker`; resolves once it is gone. */
export function killScriptAt(script: string, args: string[], marker: string): Promise<{ stdout: string; killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(script, args, { env: scriptEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let killed = false;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!killed && stdout.includes(marker)) {
        killed = true;
        process.kill(-child.pid!, 'SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', () => resolve({ stdout, killed }));
  });
}

/** What differs between two snapshots, one line per path; `withTimes` also compares mtimes. */
export function treeDiff(a: Map<string, TreeEntry>, b: Map<string, TreeEntry>, withTimes: boolean): string[] {
  const diffs: string[] = [];
  for (const path of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(path);
    const y = b.get(path);
    if (!x || !y) {
      diffs.push(`${path}: ${x ? 'removed' : 'added'}`);
      continue;
    }
    const strip = (e: TreeEntry) => (withTimes ? e : { ...e, mtimeMs: 0 });
    if (JSON.stringify(strip(x)) !== JSON.stringify(strip(y))) diffs.push(`${path}: ${JSON.stringify(x)} -> ${JSON.stringify(y)}`);
  }
  return diffs;
}
