import type { ShadowResult } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { addSample, compareSample, emptyTally, summarize, type ShadowTally } from './shadow-compare.js';
import type { LoadedModel, Tensor } from './types.js';

// The shadow phase: while a candidate version is loaded beside the active one, a sample of real local
// requests also runs on the candidate, after the client has its answer from the active version.

export interface ShadowOptions {
  /** Share of requests sampled, 0..1. */
  sampleRate: number;
  /** run() resolves once this many requests were compared. */
  minSamples: number;
  /** ...or after this long, with whatever it has (samples may be 0). */
  maxDurationSec: number;
}

export interface ShadowRegistry {
  /** Resolves at minSamples, at maxDurationSec or on abort; a second run() for the same model name ends the first. */
  run(candidate: LoadedModel, opts: ShadowOptions, signal: AbortSignal, onProgress?: (samples: number) => void): Promise<ShadowResult>;
}

/** A request picked for shadowing. Exactly one of its methods must be called. */
export interface ShadowSample {
  /** After the active model answered: runs the candidate on `inputs` (which the candidate may consume) in the background. Never throws. */
  compare(inputs: Tensor[], activeOutputs: Tensor[], activeMs: number): void;
  /** The request ended without active outputs; frees its place. */
  abandon(): void;
}

export interface ShadowTap {
  /** Request path: the shadow session sampling this request of model `name`, if any (decides by its rate). */
  tap(name: string): ShadowSample | undefined;
}

/**
 * Candidate runs in flight per session. Sampling pauses at this many, so a slow candidate costs the
 * device a bounded amount of work instead of a queue that grows with the traffic.
 */
export const MAX_CONCURRENT_SHADOW_RUNS = 2;

interface Session {
  candidate: LoadedModel;
  opts: ShadowOptions;
  tally: ShadowTally;
  /** Sampled requests not yet finished on the candidate (reserved at tap). */
  inFlight: number;
  candidateErrors: number;
  onProgress: ((samples: number) => void) | undefined;
  end(): void;
}

export function createShadowRegistry(opts: { logger: Logger; random?: () => number }): ShadowRegistry & ShadowTap {
  const log = opts.logger.child({ module: 'shadow' });
  const random = opts.random ?? Math.random;
  const sessions = new Map<string, Session>();

  function record(session: Session, sample: Parameters<typeof addSample>[1]): void {
    if (sessions.get(session.candidate.name) !== session) return; // ended while the candidate ran
    addSample(session.tally, sample);
    try {
      session.onProgress?.(session.tally.samples);
    } catch (err) {
      log.warn({ model: session.candidate.name, err: (err as Error).message }, 'shadow progress callback failed');
    }
    if (session.tally.samples >= session.opts.minSamples) session.end();
  }

  function runCandidate(session: Session, inputs: Tensor[], activeOutputs: Tensor[], activeMs: number): void {
    const { candidate } = session;
    const started = performance.now();
    candidate
      .infer(inputs)
      .then(
        (outputs) => record(session, { comparison: compareSample(activeOutputs, outputs), activeMs, candidateMs: performance.now() - started }),
        (err: Error) => {
          if (sessions.get(candidate.name) !== session) return;
          // The first failure says what is wrong; the rest would only repeat it on every sampled request.
          if (session.candidateErrors++ === 0) log.warn({ model: candidate.name, version: candidate.version, err: err.message }, 'candidate failed on a shadowed request');
          record(session, { failed: true, activeMs });
        },
      )
      .finally(() => session.inFlight--);
  }

  function tap(name: string): ShadowSample | undefined {
    const session = sessions.get(name);
    if (!session || session.inFlight >= MAX_CONCURRENT_SHADOW_RUNS || !(random() < session.opts.sampleRate)) return undefined;
    session.inFlight++;
    let settled = false;
    return {
      compare(inputs, activeOutputs, activeMs) {
        if (settled) return;
        settled = true;
        // After this turn, so the client's response is written before the candidate's inputs are sent.
        setImmediate(() => runCandidate(session, inputs, activeOutputs, activeMs));
      },
      abandon() {
        if (settled) return;
        settled = true;
        session.inFlight--;
      },
    };
  }

  function run(candidate: LoadedModel, shadowOpts: ShadowOptions, signal: AbortSignal, onProgress?: (samples: number) => void): Promise<ShadowResult> {
    sessions.get(candidate.name)?.end();
    return new Promise<ShadowResult>((resolve) => {
      const session: Session = { candidate, opts: shadowOpts, tally: emptyTally(), inFlight: 0, candidateErrors: 0, onProgress, end };
      const startedAt = Date.now();
      let timer: NodeJS.Timeout | undefined;
      let ended = false;
      function end(): void {
        if (ended) return;
        ended = true;
        if (sessions.get(candidate.name) === session) sessions.delete(candidate.name);
        clearTimeout(timer);
        signal.removeEventListener('abort', end);
        const result = summarize(session.tally);
        log.info({ model: candidate.name, version: candidate.version, ...result, candidateErrors: session.candidateErrors, ms: Date.now() - startedAt }, 'shadow phase ended');
        resolve(result);
      }
      if (signal.aborted) {
        resolve(summarize(session.tally));
        return;
      }
      sessions.set(candidate.name, session);
      // The wire contract allows at most 7 days, well inside setTimeout's range; the cap guards other callers.
      timer = setTimeout(end, Math.min(2 ** 31 - 1, shadowOpts.maxDurationSec * 1000));
      signal.addEventListener('abort', end, { once: true });
      log.info({ model: candidate.name, version: candidate.version, ...shadowOpts }, 'shadow phase started');
    });
  }

  return { run, tap };
}
