import type { Profile, TypedTensor } from '@edgefleet/shared';
import { encodeModel, type ModelProto } from '@edgefleet/shared/onnx';
import { calibrateRanges, DEFAULT_PERCENTILE, type CalibrationMethod } from './calibration.js';
import { collectActivations, type CalibrationFeeds, type RunModel } from './collect-activations.js';
import { convertToFloat16 } from './fp16.js';
import { quantizeInt8Dynamic } from './int8-dynamic.js';
import { convertToInt8Static, int8StaticCalibrationTensors } from './int8-static.js';
import { quantizeInt8Weights } from './int8-weights.js';
import { pruneAndQuantize } from './pruned.js';

/**
 * One function per built profile onto the graph transforms. Inference (calibration runs, comparing
 * int8-static candidates) comes in through the context, so this module stays free of onnxruntime.
 */

export type BuiltProfile = Exclude<Profile, 'fp32'>;

/** How far a model's outputs are from fp32's on the calibration samples. */
export interface CalibrationDistance {
  /** Share of top-1 rows that differ from fp32's (0 when the output has no class axis). */
  disagreement: number;
  relativeError: number;
}

export interface ProfileContext {
  /** The calibration split, in batches of samples (none when the set is one sample); null when no set was uploaded. */
  calibration: readonly (readonly TypedTensor[])[] | null;
  calibrationMethod: 'minmax' | 'percentile' | 'auto';
  pruneSparsity: number;
  runModel: RunModel;
  /** Compares a candidate with fp32 on the calibration samples (never the held-out ones). */
  distanceOnCalibration(model: Uint8Array): Promise<CalibrationDistance>;
}

export interface ProfileBuild {
  model: ModelProto;
  bytes: Uint8Array;
  /** Share of fp32's Conv/MatMul/Gemm weight bytes now int8; null for fp16. */
  quantizedWeightShare: number | null;
  notes: string[];
}

/** Raised when a profile cannot be built from what the job holds (not a transform failure): the variant is rejected with this reason. */
export class ProfileUnavailable extends Error {}

export const INT8_STATIC_NEEDS_CALIBRATION = 'int8-static needs calibration data: upload it with PUT …/calibration';

const keptFloat = (nodes: readonly { node: string; reason: string }[]): string[] => nodes.map((n) => `kept float: ${n.node} (${n.reason})`);

/** What an int8 compute profile did with each weight: int8 compute, int8 storage with float compute, float16 storage (the output layer). */
function computeNotes(r: { quantizedNodes: readonly string[]; weightOnlyNodes: readonly string[]; float16WeightNodes: readonly string[] }): string[] {
  const notes = [`${r.quantizedNodes.length} Conv/MatMul/Gemm nodes compute in int8`];
  if (r.weightOnlyNodes.length > 0) notes.push(`${r.weightOnlyNodes.length} compute in float from int8-stored weights: ${r.weightOnlyNodes.join(', ')}`);
  if (r.float16WeightNodes.length > 0) notes.push(`float16-stored weights (output layer): ${r.float16WeightNodes.join(', ')}`);
  return notes;
}

/** A calibration batch as collect-activations' feeds; calibration runs on FP32 inputs only. */
export function toCalibrationFeeds(batch: readonly TypedTensor[]): CalibrationFeeds {
  return Object.fromEntries(
    batch.map((t) => {
      if (t.datatype !== 'FP32') throw new ProfileUnavailable(`int8-static calibrates FP32 inputs only; input ${t.name} is ${t.datatype}`);
      return [t.name, { data: t.data as Float32Array, dims: t.shape }];
    }),
  );
}

function buildFp16(model: ModelProto): ProfileBuild {
  // 'gpu': the fp16 profile is for GPUs; on a CPU it is slower, and its latencyRatio shows the planner that.
  const r = convertToFloat16(model, { target: 'gpu' });
  const notes = [`${r.float16Nodes.length} nodes compute in float16, ${r.float16Initializers} initializers halved`];
  if (r.float32Ops.length > 0) notes.push(`kept float32: ${r.float32Ops.join(', ')}`);
  return { model: r.model, bytes: encodeModel(r.model), quantizedWeightShare: null, notes };
}

function buildInt8Dynamic(model: ModelProto): ProfileBuild {
  const r = quantizeInt8Dynamic(model);
  const notes = [...computeNotes(r), ...keptFloat(r.skippedNodes)];
  return { model: r.model, bytes: encodeModel(r.model), quantizedWeightShare: r.quantizedShare, notes };
}

function buildInt8Weights(model: ModelProto): ProfileBuild {
  const r = quantizeInt8Weights(model);
  const notes = [`${r.quantizedNodes.length} Conv/MatMul/Gemm weights stored as int8`, ...keptFloat(r.floatNodes)];
  return { model: r.model, bytes: encodeModel(r.model), quantizedWeightShare: r.quantizedWeightShare, notes };
}

function buildPruned(model: ModelProto, sparsity: number): ProfileBuild {
  const r = pruneAndQuantize(model, { sparsity });
  const notes = [`sparsity ${r.sparsity.toFixed(3)} reached over ${r.prunedTensors} pruned weights (target ${sparsity})`, ...keptFloat(r.floatNodes)];
  return { model: r.model, bytes: encodeModel(r.model), quantizedWeightShare: r.quantizedWeightShare, notes };
}

const METHODS: Record<'minmax' | 'percentile', CalibrationMethod> = {
  minmax: { kind: 'minmax' },
  percentile: { kind: 'percentile', percentile: DEFAULT_PERCENTILE },
};

/** Lexicographic: fewer top-1 flips first, then the smaller relative error; minmax wins a tie. */
export function closerToFp32(a: CalibrationDistance, b: CalibrationDistance): boolean {
  return a.disagreement !== b.disagreement ? a.disagreement < b.disagreement : a.relativeError <= b.relativeError;
}

interface StaticCandidate {
  method: 'minmax' | 'percentile';
  result: ReturnType<typeof convertToInt8Static>;
  bytes: Uint8Array;
  /** Measured only when `auto` has two candidates to choose from. */
  distance: CalibrationDistance | null;
}

async function buildInt8Static(model: ModelProto, ctx: ProfileContext): Promise<ProfileBuild> {
  if (!ctx.calibration) throw new ProfileUnavailable(INT8_STATIC_NEEDS_CALIBRATION);
  if (ctx.calibration.length === 0) {
    throw new ProfileUnavailable('int8-static needs at least 2 calibration samples: the first half calibrates, the rest is held out for evaluation');
  }
  const feeds = ctx.calibration.map(toCalibrationFeeds);
  const activations = await collectActivations(model, int8StaticCalibrationTensors(model), feeds, ctx.runModel);
  const methods = ctx.calibrationMethod === 'auto' ? (['minmax', 'percentile'] as const) : [ctx.calibrationMethod];
  const candidates: StaticCandidate[] = [];
  for (const method of methods) {
    const result = convertToInt8Static(model, calibrateRanges(activations, METHODS[method]));
    const bytes = encodeModel(result.model);
    candidates.push({ method, result, bytes, distance: methods.length > 1 ? await ctx.distanceOnCalibration(bytes) : null });
  }
  const chosen = candidates.reduce((best, c) => (best.distance && c.distance && !closerToFp32(best.distance, c.distance) ? c : best));
  const samples = ctx.calibration.reduce((n, batch) => n + (batch[0]?.shape[0] ?? 0), 0);
  const how = chosen.distance
    ? `calibration: ${chosen.method} chosen by auto, closer to fp32 on the ${samples} calibration samples ` +
      `(${candidates.map((c) => `${c.method}: agreement ${(1 - c.distance!.disagreement).toFixed(4)}, relative error ${c.distance!.relativeError.toPrecision(3)}`).join('; ')})`
    : `calibration: ${chosen.method} on ${samples} samples`;
  const r = chosen.result;
  const notes = [how, ...computeNotes(r), ...keptFloat(r.floatNodes)];
  if (r.foldedBatchNorms > 0) notes.push(`${r.foldedBatchNorms} BatchNorm folded into Conv`);
  if (r.absorbedActivations > 0) notes.push(`${r.absorbedActivations} Relu/Clip absorbed into ranges`);
  return { model: r.model, bytes: chosen.bytes, quantizedWeightShare: r.quantizedWeightShare, notes };
}

/**
 * Builds one profile from the decoded fp32 model; throws when the transform fails. An int8 profile
 * that quantized no weight is the fp32 model with extra nodes: rejected, never offered to the planner.
 */
export async function buildProfile(profile: BuiltProfile, model: ModelProto, ctx: ProfileContext): Promise<ProfileBuild> {
  const built = await transform(profile, model, ctx);
  if (built.quantizedWeightShare === 0) {
    throw new ProfileUnavailable(`${profile} quantized none of the Conv/MatMul/Gemm weights (${built.notes.join('; ')}): nothing to gain over fp32`);
  }
  return built;
}

async function transform(profile: BuiltProfile, model: ModelProto, ctx: ProfileContext): Promise<ProfileBuild> {
  switch (profile) {
    case 'fp16':
      return buildFp16(model);
    case 'int8-dynamic':
      return buildInt8Dynamic(model);
    case 'int8-static':
      return buildInt8Static(model, ctx);
    case 'int8-weights':
      return buildInt8Weights(model);
    case 'pruned':
      return buildPruned(model, ctx.pruneSparsity);
  }
}
