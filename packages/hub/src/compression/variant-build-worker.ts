import { readFile } from 'node:fs/promises';
import { compress } from '@mongodb-js/zstd';
import type { TensorSpec, TypedTensor, VariantEvaluation } from '@edgefleet/shared';
import { decodeModel, readSignature, type ModelProto } from '@edgefleet/shared/onnx';
import { batches, checkCalibrationSet, type CalibrationSet, generatedSamples, sliceSamples, splitCalibration } from './evaluation-data.js';
import { fidelityTally, goldenTolerance, judgeVariant, percentile, type EvaluationData, type Fidelity } from './evaluation.js';
import { buildProfile, ProfileUnavailable, type BuiltProfile, type CalibrationDistance, type ProfileBuild } from './profiles.js';
import { decodeCalibrationFile } from '../models/calibration-file.js';
import { DEFAULT_TIMING, type BuildProgress, type BuiltVariant, type VariantBuildJob, type WorkerMessage, type WorkerRequest } from './variant-builder.js';
import { calibrationRunner, openSession, type ModelSession } from './variant-session.js';

/**
 * The build process (forked by variant-builder.ts): builds each requested variant from the fp32
 * model, evaluates it against fp32 in onnxruntime and compresses it, sending progress and each
 * variant as it is done. Everything heavy (calibration file decoding, protobuf decoding, transforms,
 * inference, zstd) happens here under this process's heap limit, so the hub's event loop only ever
 * sees messages. One job in; progress, variants and `done` out.
 */

/** Samples per calibration run; a model whose batch dimension is fixed runs one at a time. */
const CALIBRATION_BATCH = 16;
/** fp32's outputs on the evaluation samples are kept for every variant up to this many bytes, recomputed past it. */
const REFERENCE_CACHE_BYTES = 256 * 2 ** 20;
const ZSTD_LEVEL = 19;
/** A zstd copy is served only when it saves at least this share of the file. */
const MIN_TRANSFER_SAVING = 0.1;

interface Sample {
  inputs: TypedTensor[];
  label?: number;
}
interface BuildData {
  kind: EvaluationData;
  evaluation: Sample[];
  /** Batches of the calibration split (empty when the set has a single sample); null without a calibration set. */
  calibration: TypedTensor[][] | null;
}

function dataFor(job: VariantBuildJob, set: CalibrationSet | undefined, specs: readonly TensorSpec[]): BuildData {
  if (!set) return { kind: 'generated', evaluation: generatedSamples(specs).map((inputs) => ({ inputs })), calibration: null };
  checkCalibrationSet(set);
  const { calibrate, evaluate } = splitCalibration(set.samples);
  const batchSize = specs.every((s) => (s.shape[0] ?? -1) < 0) ? CALIBRATION_BATCH : 1;
  const evaluation: Sample[] = [];
  for (let i = evaluate.start; i < evaluate.end; i++) {
    const label = set.labels?.[i];
    evaluation.push({ inputs: sliceSamples(set.inputs, { start: i, end: i + 1 }), ...(label === undefined ? {} : { label }) });
  }
  const calibration = batches(calibrate, batchSize).map((r) => sliceSamples(set.inputs, r));
  return { kind: 'calibration', evaluation, calibration };
}

/** fp32's outputs per evaluation sample, kept while they fit REFERENCE_CACHE_BYTES. */
function referenceOutputs(reference: ModelSession, samples: readonly Sample[]): (i: number) => Promise<TypedTensor[]> {
  const cache = new Map<number, TypedTensor[]>();
  let cached = 0;
  return async (i) => {
    const hit = cache.get(i);
    if (hit) return hit;
    const outputs = await reference.run(samples[i]!.inputs);
    const bytes = outputs.reduce((n, t) => n + t.data.byteLength, 0);
    if (cached + bytes <= REFERENCE_CACHE_BYTES) {
      cache.set(i, outputs);
      cached += bytes;
    }
    return outputs;
  };
}

async function fidelityOn(variant: ModelSession, samples: readonly Sample[], fp32: (i: number) => Promise<TypedTensor[]>): Promise<Fidelity> {
  const tally = fidelityTally();
  for (let i = 0; i < samples.length; i++) tally.add(await fp32(i), await variant.run(samples[i]!.inputs), samples[i]!.label);
  return tally.result();
}

/** p50 latency of both models on one sample, runs alternating so drift in machine load hits both alike. */
async function latencies(reference: ModelSession, variant: ModelSession, sample: Sample, timing: { runs: number; warmup: number }) {
  for (let i = 0; i < timing.warmup; i++) {
    await reference.run(sample.inputs);
    await variant.run(sample.inputs);
  }
  const fp32: number[] = [];
  const own: number[] = [];
  for (let i = 0; i < timing.runs; i++) {
    for (const [session, times] of [[reference, fp32], [variant, own]] as const) {
      const start = performance.now();
      await session.run(sample.inputs);
      times.push(performance.now() - start);
    }
  }
  return { latencyMs: percentile(own, 50), fp32LatencyMs: percentile(fp32, 50) };
}

async function zstdCopy(bytes: Uint8Array, minSaving: number): Promise<Uint8Array | null> {
  const packed = await compress(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), ZSTD_LEVEL);
  return packed.byteLength < bytes.byteLength * (1 - minSaving) ? new Uint8Array(packed) : null;
}

interface BuildContext {
  job: VariantBuildJob;
  fp32: ModelProto;
  reference: ModelSession;
  fp32Outputs: (i: number) => Promise<TypedTensor[]>;
  goldenFp32: TypedTensor[];
  data: BuildData;
  distanceOnCalibration(model: Uint8Array): Promise<CalibrationDistance>;
  runModel: ReturnType<typeof calibrationRunner>['run'];
  progress(profile: BuiltProfile, step: NonNullable<BuildProgress['step']>): void;
}

async function transform(profile: BuiltProfile, ctx: BuildContext): Promise<ProfileBuild> {
  return buildProfile(profile, ctx.fp32, {
    calibration: ctx.data.calibration,
    calibrationMethod: ctx.job.calibrationMethod,
    pruneSparsity: ctx.job.pruneSparsity,
    runModel: ctx.runModel,
    distanceOnCalibration: ctx.distanceOnCalibration,
  });
}

/** Evaluates, judges and compresses a built variant; the session is the variant's own. */
async function evaluate(profile: BuiltProfile, built: ProfileBuild, session: ModelSession, ctx: BuildContext): Promise<BuiltVariant> {
  const fidelity = await fidelityOn(session, ctx.data.evaluation, ctx.fp32Outputs);
  if (![fidelity.maxAbsError, fidelity.relativeError].every(Number.isFinite)) {
    return { profile, state: 'failed', reason: `the ${profile} variant outputs NaN or infinite values where fp32 does not (${ctx.data.evaluation.length} samples)` };
  }
  const goldenOutputs = await session.run(ctx.job.goldenInputs);
  const timing = await latencies(ctx.reference, session, ctx.data.evaluation[0]!, ctx.job.timing ?? DEFAULT_TIMING);
  const judgement = judgeVariant(fidelity, ctx.data.kind, ctx.job.budget);
  ctx.progress(profile, 'compress');
  // A pruned variant exists for its compressed size: it travels compressed whenever that is smaller at all.
  const packed = await zstdCopy(built.bytes, profile === 'pruned' ? 0 : MIN_TRANSFER_SAVING);
  const fp32Size = ctx.job.model.byteLength;
  const evaluation: VariantEvaluation = {
    ...fidelity,
    data: ctx.data.kind,
    sizeRatio: built.bytes.byteLength / fp32Size,
    transferRatio: (packed ?? built.bytes).byteLength / fp32Size,
    ...timing,
    latencyRatio: timing.latencyMs / timing.fp32LatencyMs,
    quantizedWeightShare: built.quantizedWeightShare,
    notes: built.notes,
  };
  return {
    profile,
    ...judgement,
    bytes: built.bytes,
    ...(packed ? { transfer: { encoding: 'zstd' as const, bytes: packed } } : {}),
    evaluation,
    goldenOutputs,
    tolerance: goldenTolerance(ctx.goldenFp32, goldenOutputs),
  };
}

async function buildVariant(profile: BuiltProfile, ctx: BuildContext): Promise<BuiltVariant> {
  ctx.progress(profile, 'transform');
  let built: ProfileBuild;
  try {
    built = await transform(profile, ctx);
  } catch (err) {
    if (err instanceof ProfileUnavailable) return { profile, state: 'rejected', reason: err.message };
    return { profile, state: 'failed', reason: `the ${profile} transform failed: ${(err as Error).message}` };
  }
  ctx.progress(profile, 'evaluate');
  let session: ModelSession;
  try {
    session = await openSession(built.bytes, `${profile} variant`);
  } catch (err) {
    return { profile, state: 'failed', reason: (err as Error).message };
  }
  try {
    return await evaluate(profile, built, session, ctx);
  } catch (err) {
    return { profile, state: 'failed', reason: `evaluating the ${profile} variant failed: ${(err as Error).message}` };
  } finally {
    await session.release();
  }
}

/** Compares a candidate with fp32 batch by batch on the calibration split (int8-static's `auto`). */
function calibrationDistance(reference: ModelSession, data: BuildData): (model: Uint8Array) => Promise<CalibrationDistance> {
  return async (model) => {
    const candidate = await openSession(model, 'int8-static candidate');
    try {
      const tally = fidelityTally();
      for (const batch of data.calibration ?? []) tally.add(await reference.run(batch), await candidate.run(batch));
      const f = tally.result();
      return { disagreement: f.agreement === null ? 0 : 1 - f.agreement, relativeError: f.relativeError };
    } finally {
      await candidate.release();
    }
  };
}

function post(msg: WorkerMessage): void {
  process.send?.(msg);
}

async function calibrationOf(job: VariantBuildJob): Promise<CalibrationSet | undefined> {
  if (job.calibration || !job.calibrationFile) return job.calibration;
  return decodeCalibrationFile(await readFile(job.calibrationFile));
}

async function runJob(job: VariantBuildJob): Promise<void> {
  const fp32 = decodeModel(job.model);
  const signature = readSignature(fp32);
  if (signature.inputs.length === 0) throw new Error('the fp32 model declares no inputs');
  const data = dataFor(job, await calibrationOf(job), signature.inputs);
  if (data.evaluation.length === 0) throw new Error('no samples to evaluate on');
  const reference = await openSession(job.model, 'fp32 model');
  const calibration = calibrationRunner();
  try {
    const total = job.profiles.length;
    let done = 0;
    const ctx: BuildContext = {
      job,
      fp32,
      reference,
      fp32Outputs: referenceOutputs(reference, data.evaluation),
      goldenFp32: await reference.run(job.goldenInputs),
      data,
      distanceOnCalibration: calibrationDistance(reference, data),
      runModel: calibration.run,
      progress: (profile, step) => post({ type: 'progress', progress: { done, total, profile, step } }),
    };
    for (const profile of job.profiles) {
      const built = await buildVariant(profile, ctx);
      await calibration.release();
      post({ type: 'variant', variant: built });
      done++;
      post({ type: 'progress', progress: { done, total, profile: null, step: null } });
    }
  } finally {
    await calibration.release();
    await reference.release();
  }
}

process.once('message', ({ job }: WorkerRequest) => {
  runJob(job).then(
    () => post({ type: 'done' }),
    (err: unknown) => post({ type: 'error', error: err instanceof Error ? err.message : String(err) }),
  );
});
// The hub is gone (or let go of this build): nobody is left to send results to.
process.once('disconnect', () => process.exit(0));
