import { BenchmarkArgs } from '@edgefleet/shared';
import { Compile } from 'typebox/compile';
import type { CommandHandler } from '../commands/command-table.js';
import { DEPLOYMENT_BUSY_ERROR, type BenchmarkRunner } from './benchmark-runner.js';

const argsCheck = Compile(BenchmarkArgs);

/** Names the first way `args` misses the BenchmarkArgs schema. */
function argsProblem(args: unknown): string {
  const first = argsCheck.Errors(args)[0];
  const where = first?.instancePath ? `at ${first.instancePath} ` : '';
  return `benchmark args do not match the schema: ${where}${first?.message ?? 'invalid'}`;
}

export interface BenchmarkCommandOptions {
  now?: () => number;
  /** True while a deployment downloads, loads, shadows or watches health: the two would compete for disk, cores and the health window's latencies. */
  deploymentBusy?: () => boolean;
}

/**
 * The `benchmark` verb: args checked against the shared schema, a request past its expiresAt (the
 * hub no longer serves the candidates), one that arrives while another runs or while a deployment
 * is in progress is refused at once; otherwise the answer is the runner's BenchmarkResult.
 */
export function benchmarkCommand(runner: BenchmarkRunner, opts: BenchmarkCommandOptions = {}): CommandHandler {
  const now = opts.now ?? Date.now;
  return async (args) => {
    if (!argsCheck.Check(args)) return { ok: false, error: argsProblem(args) };
    if (now() > args.expiresAt) {
      return { ok: false, error: `the benchmark request expired at ${new Date(args.expiresAt).toISOString()} (agent time ${new Date(now()).toISOString()}); the hub no longer serves its candidates` };
    }
    if (opts.deploymentBusy?.()) return { ok: false, error: DEPLOYMENT_BUSY_ERROR };
    if (runner.running) return { ok: false, error: 'a benchmark is running; this agent runs one at a time' };
    return { ok: true, result: await runner.run(args) };
  };
}
