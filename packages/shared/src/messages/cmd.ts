import { Type, type Static } from 'typebox';
import { EnvelopeFields } from '../envelope.js';
import { SignedManifest } from '../manifest.js';
import { CLOSED, LongText } from './bounds.js';

/** One-off request from the hub; the verbs are added by the issues that need them. */
/** A command id's bound: the cmd/result that answers it carries the same id under the same bound. */
export const MAX_CMD_ID_LENGTH = 128;

export const CmdMessage = Type.Object({
  id: Type.String({ minLength: 1, maxLength: MAX_CMD_ID_LENGTH }),
  verb: Type.String({ minLength: 1 }),
  args: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type CmdMessage = Static<typeof CmdMessage>;

/** `result` is open (each verb defines its own); the cmd/result size limit and the JSON depth limit bound it. */
export const CmdResultMessage = Type.Object(
  {
    ...EnvelopeFields,
    id: Type.String({ minLength: 1, maxLength: MAX_CMD_ID_LENGTH }),
    ok: Type.Boolean(),
    result: Type.Optional(Type.Unknown()),
    error: Type.Optional(LongText),
  },
  CLOSED,
);
export type CmdResultMessage = Static<typeof CmdResultMessage>;

/**
 * `benchmark`: the device downloads each candidate variant (signature and sha256 verified as for a
 * deployment), runs it at batch 1 on seeded inputs built from the manifest's signature (golden.ts)
 * in a session of its own, off the serving path, and answers with its latencies. The hub lets the
 * device download exactly these artifacts until `expiresAt`.
 */
export const BENCHMARK_VERB = 'benchmark';
export const MAX_BENCHMARK_CANDIDATES = 6;
export const BenchmarkArgs = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 128 }),
  version: Type.String({ minLength: 1, maxLength: 128 }),
  candidates: Type.Array(SignedManifest, { minItems: 1, maxItems: MAX_BENCHMARK_CANDIDATES }),
  /** Timed runs per candidate after warm-up (default 30). */
  runs: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  warmup: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  /** ms since epoch after which the hub no longer serves the candidates. */
  expiresAt: Type.Integer({ minimum: 0 }),
});
export type BenchmarkArgs = Static<typeof BenchmarkArgs>;

/**
 * The largest latency a measurement may report: one inference slower than the benchmark request's
 * whole life (10 minutes) cannot have been timed 30 times within it.
 */
export const MAX_BENCHMARK_LATENCY_MS = 10 * 60 * 1000;
/** A measured latency: above zero (a run takes time; 0 would make any variant look infinitely faster) and bounded. */
const LatencyMs = Type.Number({ exclusiveMinimum: 0, maximum: MAX_BENCHMARK_LATENCY_MS });

export const BenchmarkMeasurement = Type.Object(
  {
    profile: Type.String({ maxLength: 64 }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    ok: Type.Boolean(),
    p50Ms: Type.Optional(LatencyMs),
    p90Ms: Type.Optional(LatencyMs),
    runs: Type.Integer({ minimum: 0, maximum: 1000 }),
    error: Type.Optional(LongText),
  },
  CLOSED,
);
export type BenchmarkMeasurement = Static<typeof BenchmarkMeasurement>;

/** The `result` of a benchmark cmd/result. */
export const BenchmarkResult = Type.Object(
  {
    model: Type.String({ maxLength: 128 }),
    version: Type.String({ maxLength: 128 }),
    /** Threads the benchmark sessions used (intra-op), so numbers from different agents compare. */
    threads: Type.Integer({ minimum: 1, maximum: 4096 }),
    measurements: Type.Array(BenchmarkMeasurement, { maxItems: MAX_BENCHMARK_CANDIDATES }),
  },
  CLOSED,
);
export type BenchmarkResult = Static<typeof BenchmarkResult>;
