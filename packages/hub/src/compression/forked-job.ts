import { fork } from 'node:child_process';

/**
 * One job in a child process with a heap limit: the request goes in over IPC (V8 serialization:
 * typed arrays arrive as typed arrays), messages come out until one of them ends the job. A child
 * process, not a worker thread: onnxruntime's native code cannot be stopped safely mid-run inside a
 * thread (Worker.terminate() there aborted the whole hub with a Napi::Error), and a process's crash
 * or OOM kill ends only itself. Cancelling kills it with SIGKILL, the only way to interrupt
 * onnxruntime mid-run, and resolves once it has exited.
 */

/** Bytes of the child's stderr kept to name a crash (V8's OOM report is a few lines). */
const STDERR_TAIL_BYTES = 8192;

export interface ForkedJobOptions<M> {
  /** Compiled entry of the child (dist/…/*.js). */
  path: string;
  /** --max-old-space-size of the child, MB. */
  heapMb: number;
  /** What the job is, for errors: "the variant build", "the baseline build". */
  what: string;
  /** What to say when the child ran out of heap (how to raise the limit). */
  heapHint?: string;
  /**
   * Each message from the child: return { done: true } to end the job successfully, an Error to end
   * it failed, or nothing to go on. A throwing handler ends the job, not the hub.
   */
  onMessage(msg: M): { done: true } | Error | void;
}

/** Why the child ended without finishing, from its exit and the tail of its stderr. */
export function describeChildExit(code: number | null, signal: NodeJS.Signals | null, stderr: string, opts: { what: string; heapMb: number; heapHint?: string }): string {
  const oom = stderr.split('\n').find((line) => /heap out of memory|Reached heap limit|Allocation failed/i.test(line));
  if (oom) return `${opts.what} ran out of memory (heap limited to ${opts.heapMb} MB${opts.heapHint ? `; ${opts.heapHint}` : ''}): ${oom.trim()}`;
  if (signal === 'SIGKILL') {
    return `${opts.what} process was killed by SIGKILL (the kernel does that when the machine runs out of memory, onnxruntime's native memory included)`;
  }
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  const said = stderr.trim().split('\n').slice(-3).join(' | ');
  return `${opts.what} process ${how} before finishing${said ? `: ${said}` : ''}`;
}

export function runForkedJob<R, M>(request: R, opts: ForkedJobOptions<M>): { done: Promise<void>; cancel(): Promise<void> } {
  const child = fork(opts.path, [], {
    execArgv: [`--max-old-space-size=${opts.heapMb}`],
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    // A process that never started has nothing to wait for.
    child.once('error', () => child.pid === undefined && resolve());
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES);
  });
  let settled = false;
  let resolveDone!: () => void;
  let rejectDone!: (err: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  const finish = (err: Error | null) => {
    if (settled) return;
    settled = true;
    if (err) rejectDone(err);
    else resolveDone();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };

  child.on('message', (msg: M) => {
    if (settled) return;
    try {
      const outcome = opts.onMessage(msg);
      if (outcome instanceof Error) finish(outcome);
      else if (outcome?.done) finish(null);
    } catch (err) {
      finish(new Error(`${opts.what}'s message handler failed: ${(err as Error).message}`));
    }
  });
  child.once('error', (err) => finish(new Error(`${opts.what} process failed: ${err.message}`)));
  // 'close' waits for stderr to end, so V8's out-of-memory report is read before the exit is named.
  child.once('close', (code, signal) => finish(new Error(describeChildExit(code, signal, stderr, opts))));

  child.send(request as object, (err) => {
    if (err) finish(new Error(`could not hand the job to ${opts.what} process: ${err.message}`));
  });

  return {
    done,
    async cancel() {
      // The caller asked for it: a `done` nobody awaits any more must not become an unhandled rejection.
      done.catch(() => undefined);
      finish(new Error(`${opts.what} was cancelled`));
      await exited;
    },
  };
}
