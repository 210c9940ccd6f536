import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const HUB_MAIN = `${REPO_ROOT}packages/hub/dist/main.js`;
export const AGENT_MAIN = `${REPO_ROOT}packages/agent/dist/main.js`;

export type LogLine = Record<string, unknown> & { msg?: string };

interface Waiter {
  predicate: (line: LogLine) => boolean;
  resolve: (line: LogLine) => void;
}

/** A child process whose JSON log lines can be awaited; the way tests synchronise with real processes. */
export class RunningProcess {
  readonly lines: LogLine[] = [];
  readonly rawOutput: string[] = [];
  private waiters: Waiter[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly detached = false,
  ) {
    const onLine = (text: string) => {
      this.rawOutput.push(text);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { msg: text, raw: true };
      }
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => {
        if (!w.predicate(line)) return true;
        w.resolve(line);
        return false;
      });
    };
    if (child.stdout) createInterface({ input: child.stdout }).on('line', onLine);
    if (child.stderr) createInterface({ input: child.stderr }).on('line', onLine);
    this.exited = once(child, 'exit').then(([code]) => code as number | null);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first log line (past or future) matching `predicate`. */
  waitForLine(predicate: (line: LogLine) => boolean, timeoutMs = 30_000, what = 'log line'): Promise<LogLine> {
    const seen = this.lines.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms. Output:\n${this.rawOutput.slice(-30).join('\n')}`));
      }, timeoutMs);
      const waiter: Waiter = {
        predicate,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      this.waiters.push(waiter);
      void this.exited.then((code) => {
        if (!this.waiters.includes(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code}) before ${what}. Output:\n${this.rawOutput.slice(-30).join('\n')}`));
      });
    });
  }

  waitForMsg(msg: string, timeoutMs?: number): Promise<LogLine> {
    return this.waitForLine((l) => l.msg === msg, timeoutMs, `"${msg}"`);
  }

  /** SIGTERM (or the given signal) and wait for exit; returns the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }

  /** Signals the whole process group (needs `detached`), as Ctrl-C in a terminal does. */
  async stopGroup(signal: NodeJS.Signals): Promise<number | null> {
    try {
      process.kill(-this.pid, signal);
    } catch {
      // the group is already empty
    }
    return this.exited;
  }
}

const children = new Set<RunningProcess>();

export interface StartOptions {
  /** The program to run; node itself by default. */
  command?: string;
  /** Own process group, so a test can signal the group the way a terminal's Ctrl-C does. */
  detached?: boolean;
  cwd?: string;
}

export function startProcess(name: string, args: string[], env: Record<string, string>, opts: StartOptions = {}): RunningProcess {
  const child = spawn(opts.command ?? process.execPath, args, {
    env: { ...process.env, EDGEFLEET_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
    cwd: opts.cwd,
  });
  const proc = new RunningProcess(name, child, opts.detached ?? false);
  children.add(proc);
  void proc.exited.then(() => children.delete(proc));
  return proc;
}

/** Kills whatever a test left running (afterAll/afterEach), so no process outlives the suite. */
export async function killAll(): Promise<void> {
  await Promise.all([...children].map((p) => (p.detached ? p.stopGroup('SIGKILL') : p.stop('SIGKILL'))));
}
