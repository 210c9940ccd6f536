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
import { freemem } from 'node:os';
import type { Logger } from 'pino';
import { boundedText } from '../deployment/step-context.js';
import { openBenchmarkSession, type BenchmarkSession } from '../inference/benchmark-session.js';
import { clearBenchmarkFiles, obtainCandidateFile, type CandidateFileOptions } from './candidate-file.js';
import { latencySummary, timeRuns } from './timing.js';

export const DEFAULT_BENCHMARK_RUNS = 30;
export const DEFAULT_BENCHMARK_WARMUP = 3;
/** BenchmarkMeasurement.profile's bound; a manifest's profile has none of its own. */
const PROFILE_MAX = 64;
/**
 * Free memory a candidate needs beyond twice its size (the file's bytes read by onnxruntime plus the
 * session's weights): the session's arena, the worker thread's own heap and the input copies. A
 * device short of it would risk the OOM killer taking the whole agent, serving included.
 */
export const BENCHMARK_MEMORY_MARGIN_BYTES = 64 * 1024 * 1024;
/**
 * How long before the request's expiresAt the agent stops measuring and answers: the hub drops an
 * answer that arrives after expiresAt, and the answer still has to cross the outbox and MQTT.
 */
export const BENCHMARK_EXPIRY_MARGIN_MS = 30_000;
/** The answer for a candidate the runner reaches while a deployment runs. */
export const DEPLOYMENT_BUSY_ERROR = 'a deployment is in progress; benchmark later';

export interface BenchmarkRunnerOptions extends Omit<CandidateFileOptions, 'signal'> {
  /** The hub key pinned at enrollment: every candidate's manifest must verify with it. */
  hubPublicKey: string;
  /** Intra-op threads of each benchmark session: those a lone serving request gets (the runtime's per-worker threads). */
  threads: number;
  logger: Logger;
  now?: () => number;
  /** Bytes of memory free now (default os.freemem; tests inject). */
  freeMemory?: () => number;
  /** True while the deployment runner is downloading, loading, in a shadow phase or a health window (default: never). */
  deploymentBusy?: () => boolean;
  /** Default BENCHMARK_EXPIRY_MARGIN_MS. */
  expiryMarginMs?: number;
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
  /** Ends a running benchmark (downloads are aborted, a loading or open session is closed) and waits for it. Safe twice. */
  stop(): Promise<void>;
  /** Removes candidate downloads a previous agent process left behind (it died mid-benchmark). Call once at start. */
  clearLeftovers(): Promise<void>;
}

export function createBenchmarkRunner(opts: BenchmarkRunnerOptions): BenchmarkRunner {
  const log = opts.logger.child({ module: 'benchmark' });
  const now = opts.now ?? Date.now;
  const freeMemory = opts.freeMemory ?? freemem;
  const deploymentBusy = opts.deploymentBusy ?? (() => false);
  const expiryMarginMs = opts.expiryMarginMs ?? BENCHMARK_EXPIRY_MARGIN_MS;
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

  /** True once the answer must go out so that it reaches the hub before the request expires. */
  const outOfTime = (args: BenchmarkArgs) => now() >= args.expiresAt - expiryMarginMs;
  const notMeasuredError = (args: BenchmarkArgs) =>
    `not measured: the request expires at ${new Date(args.expiresAt).toISOString()} and the answer must reach the hub before it (${expiryMarginMs} ms margin)`;

  /** Throws naming the shortfall when opening `manifest` could push the device out of memory. */
  function checkFreeMemory(manifest: Manifest): void {
    const needs = 2 * manifest.size + BENCHMARK_MEMORY_MARGIN_BYTES;
    const free = freeMemory();
    if (free > needs) return;
    const mb = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
    throw new EdgefleetError(
      'UNAVAILABLE',
      `not enough free memory: ${manifest.profile} (${mb(manifest.size)}) needs ${mb(needs)} (twice its size plus ${mb(BENCHMARK_MEMORY_MARGIN_BYTES)}), ${mb(free)} free`,
    );
  }

  async function measure(signed: SignedManifest, args: BenchmarkArgs): Promise<BenchmarkMeasurement> {
    const { signal } = stopping;
    const claimed = signed.manifest;
    const base = { profile: claimed.profile.slice(0, PROFILE_MAX), sha256: claimed.sha256 };
    let session: BenchmarkSession | undefined;
    try {
      const manifest = checkedManifest(signed, args);
      // Before the download: a signature whose inputs are too large to feed, or a device without the
      // memory to load the candidate, fails without costing bytes.
      const inputs = goldenInputTensors(manifest.inputs);
      checkFreeMemory(manifest);
      const file = await obtainCandidateFile(manifest, { ...opts, signal });
      // Again just before the load: the download took time, and serving may have grown meanwhile.
      checkFreeMemory(manifest);
      if (outOfTime(args)) throw new EdgefleetError('UNAVAILABLE', notMeasuredError(args));
      const { model: name, version, sha256, profile } = manifest;
      session = await openBenchmarkSession(
        { name, version, sha256, profile, path: file.path, inputs: manifest.inputs, outputs: manifest.outputs },
        { threads: opts.threads, logger: opts.logger, signal },
      );
      const samples = await timeRuns(session, inputs, {
        warmup: args.warmup ?? DEFAULT_BENCHMARK_WARMUP,
        runs: args.runs ?? DEFAULT_BENCHMARK_RUNS,
        signal,
        outOfTime: () => outOfTime(args),
      });
      // Cut short by the expiry: the samples it has are an answer; none is not.
      if (samples.length === 0) throw new EdgefleetError('UNAVAILABLE', notMeasuredError(args));
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

  function notStarted(signed: SignedManifest, error: string): BenchmarkMeasurement {
    const { profile, sha256 } = signed.manifest;
    return { profile: profile.slice(0, PROFILE_MAX), sha256, ok: false, runs: 0, error: boundedText(error) };
  }

  async function runAll(args: BenchmarkArgs): Promise<BenchmarkResult> {
    // Leftovers of a run the agent did not live to finish.
    await clearBenchmarkFiles(opts.stateDir);
    const measurements: BenchmarkMeasurement[] = [];
    for (const candidate of args.candidates) {
      if (stopping.signal.aborted) throw stoppedError();
      // Checked per candidate: a deployment that starts mid-benchmark gets the disk and cores to itself.
      if (deploymentBusy()) measurements.push(notStarted(candidate, DEPLOYMENT_BUSY_ERROR));
      else if (outOfTime(args)) measurements.push(notStarted(candidate, notMeasuredError(args)));
      else measurements.push(await measure(candidate, args));
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
    async clearLeftovers() {
      await clearBenchmarkFiles(opts.stateDir);
    },
  };
}
