// The parent side that the hub benches (hub-load.mjs, rollout-switch.mjs) share: their environment
// knobs, the simulated-devices process they fork and drive over IPC, the machine they ran on, and
// making sure that no hub or devices process outlives the bench however it ends.
import { fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';

/** A positive integer from the environment variable `name`, or `fallback` when it is unset or empty. */
export function positiveInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}="${raw}": expected a positive integer`);
  return n;
}

export const round = (v, d = 2) => +v.toFixed(d);

/** Cores, node and the load average: the machine is shared, and other work skews every number. */
export function machineAtStart() {
  return { cores: availableParallelism(), loadavgAtStart: loadavg().map((l) => round(l)), node: process.version };
}

/**
 * Forks `file` (a process that answers with serveCommands) and answers `call(cmd, args)`, which
 * resolves with its result or fails with its error, named by `label`. The child is in `running`
 * until it exits.
 */
export function forkWorker(file, label, running) {
  const child = fork(file, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  running.add(child);
  const pending = new Map();
  let ids = 0;
  child.on('message', (m) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.ok) p?.resolve(m.result);
    else p?.reject(new Error(`${label}: ${m.error}`));
  });
  child.once('exit', (code) => {
    running.delete(child);
    for (const p of pending.values()) p.reject(new Error(`${label} process exited (${code})`));
  });
  const call = (cmd, args = {}) =>
    new Promise((resolve, reject) => {
      const id = ++ids;
      pending.set(id, { resolve, reject });
      child.send({ id, cmd, ...args });
    });
  return { child, call };
}

/**
 * Whatever ends this process, no child in `running` outlives it; on SIGINT/SIGTERM the directory
 * `tempDir()` answers (if any) is removed too, since the bench's own clean-up will not run.
 */
export function killChildrenOnExit(running, tempDir) {
  process.on('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      for (const c of running) c.kill('SIGKILL');
      const dir = tempDir();
      if (dir) rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  }
}

/** Runs `main` when the module at `moduleUrl` is the script node was started with. */
export function runIfMain(moduleUrl, main) {
  if (moduleUrl !== `file://${process.argv[1]}`) return;
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
