import {
  EdgefleetError,
  goldenInputTensors,
  isEdgefleetError,
  verifyManifest,
  type BenchmarkArgs,
  type BenchmarkMeasurement,
  type BenchmarkResult,
  type Manifest,
  type SignedManifest,
} from '@edgefleet/shared';
import type { Logger } from 'pino';
import { boundedText } from '../deployment/step-context.js';
import { openBenchmarkSession, type BenchmarkSession } from '../inference/benchmark-session.js';
import { clearBenchmarkFiles, obtainCandidateFile, type CandidateFileOptions } from './candidate-file.js';
import { latencySummary, timeRuns } from './timing.js';

export const DEFAULT_BENCHMARK_RUNS = 30;
export const DEFAULT_BENCHMARK_WARMUP = 3;
/** BenchmarkMeasurement.profile's bound; a manifest's profile has none of its own. */
const PROFILE_MAX = 64;

export interface BenchmarkRunnerOptions extends Omit<CandidateFileOptions, 'signal'> {
  /** The hub key pinned at enrollment: every candidate's manifest must verify with it. */
  hubPublicKey: string;
  /** Intra-op threads of each benchmark session: those a lone serving request gets (the runtime's per-worker threads). */
  threads: number;
  logger: Logger;
  now?: () => number;
}

export interface BenchmarkRunner {
  /** True from the moment run() is called until it settles. */
  readonly running: boolean;
  /**
   * Measures the candidates one after another (a device that runs them at once would measure the
   * contention, not the variants). A candidate that fails is a measurement with ok false naming the
   * problem; the others still run. Throws CONFLICT while another run is going on, and UNAVAILABLE
   * when the runner is stopped before or during the run.
   */
  run(args: BenchmarkArgs): Promise<BenchmarkResult>;
  /** Ends a running benchmark between runs (downloads are aborted) and waits for it. Safe twice. */
  stop(): Promise<void>;
}

export function createBenchmarkRunner(opts: BenchmarkRunnerOptions): BenchmarkRunner {
  const log = opts.logger.child({ module: 'benchmark' });
  const now = opts.now ?? Date.now;
  const stopping = new AbortController();
  let current: Promise<BenchmarkResult> | undefined;

  const stoppedError = () => new EdgefleetError('UNAVAILABLE', 'the agent stopped during the benchmark');

  /** The manifest when its signature verifies and it is a variant of the benchmarked version; throws naming the problem otherwise. */
  function checkedManifest(signed: SignedManifest, args: BenchmarkArgs): Manifest {
    let manifest: Manifest;
    try {
      manifest = verifyManifest(signed, opts.hubPublicKey);
    } catch (err) {
      if (isEdgefleetError(err)) throw err;
      // A signature that is not even an ed25519 signature's shape makes node:crypto throw instead of answering false.
      throw new EdgefleetError('INVALID_MODEL', `manifest signature of ${signed.manifest.model}@${signed.manifest.version} cannot be checked with the pinned hub key: ${(err as Error).message}`);
    }
    if (manifest.model !== args.model || manifest.version !== args.version) {
      throw new EdgefleetError('BAD_REQUEST', `candidate is ${manifest.model}@${manifest.version}, but the benchmark is of ${args.model}@${args.version}`);
    }
    return manifest;
  }

  async function measure(signed: SignedManifest, args: BenchmarkArgs): Promise<BenchmarkMeasurement> {
    const { signal } = stopping;
    const claimed = signed.manifest;
    const base = { profile: claimed.profile.slice(0, PROFILE_MAX), sha256: claimed.sha256 };
    let session: BenchmarkSession | undefined;
    try {
      const manifest = checkedManifest(signed, args);
      if (now() > args.expiresAt) {
        throw new EdgefleetError('UNAVAILABLE', `the request expired at ${new Date(args.expiresAt).toISOString()} before this candidate was fetched; the hub no longer serves it`);
      }
      // Before the download: a signature whose inputs are too large to feed fails without costing bytes.
      const inputs = goldenInputTensors(manifest.inputs);
      const file = await obtainCandidateFile(manifest, { ...opts, signal });
      const { model: name, version, sha256, profile } = manifest;
      session = await openBenchmarkSession(
        { name, version, sha256, profile, path: file.path, inputs: manifest.inputs, outputs: manifest.outputs },
        { threads: opts.threads, logger: opts.logger },
      );
      const samples = await timeRuns(session, inputs, { warmup: args.warmup ?? DEFAULT_BENCHMARK_WARMUP, runs: args.runs ?? DEFAULT_BENCHMARK_RUNS, signal });
      const latency = latencySummary(samples);
      log.info({ model: name, version, profile, sha256, ...latency, runs: samples.length, installed: file.installed }, 'candidate measured');
      return { ...base, ok: true, ...latency, runs: samples.length };
    } catch (err) {
      if (signal.aborted) throw stoppedError();
      const message = (err as Error).message ?? String(err);
      log.warn({ model: claimed.model, version: claimed.version, profile: claimed.profile, sha256: claimed.sha256, err: message }, 'candidate not measured');
      return { ...base, ok: false, runs: 0, error: boundedText(message) };
    } finally {
      await session?.close().catch((err: Error) => log.warn({ err: err.message }, 'closing a benchmark session failed'));
      // Whatever happened (measured, failed, stopped), a fetched candidate or its partial download goes.
      await clearBenchmarkFiles(opts.stateDir);
    }
  }

  async function runAll(args: BenchmarkArgs): Promise<BenchmarkResult> {
    // Leftovers of a run the agent did not live to finish.
    await clearBenchmarkFiles(opts.stateDir);
    const measurements: BenchmarkMeasurement[] = [];
    for (const candidate of args.candidates) {
      if (stopping.signal.aborted) throw stoppedError();
      measurements.push(await measure(candidate, args));
    }
    return { model: args.model, version: args.version, threads: opts.threads, measurements };
  }

  return {
    get running() {
      return current !== undefined;
    },
    async run(args) {
      if (stopping.signal.aborted) throw stoppedError();
      if (current) throw new EdgefleetError('CONFLICT', 'a benchmark is running; this agent runs one at a time');
      // Set before the first await, so a second call in the same tick already sees it.
      const job = runAll(args);
      current = job;
      try {
        return await job;
      } finally {
        current = undefined;
      }
    },
    async stop() {
      stopping.abort();
      await current?.catch(() => undefined);
    },
  };
}
