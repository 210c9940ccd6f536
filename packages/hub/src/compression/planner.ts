import { EdgefleetError, PROFILES, type Capabilities, type DevicePlan, type PlanCandidate, type Profile, type VariantDetail } from '@edgefleet/shared';
import { deviceClassOf, hasInt8DotProduct, type DeviceClass } from './device-class.js';

/** A device's p50 latency for one variant (by its file's sha256). */
export interface MeasuredLatency {
  deviceId: string;
  sha256: string;
  p50Ms: number;
}

export interface PlanInput {
  deviceId: string;
  /** null until the device has reported them. */
  capabilities: Capabilities | null;
  model: string;
  version: string;
  /** The version's accepted variants with their manifests, fp32 among them. */
  variants: readonly VariantDetail[];
  /** This device's successful measurements of the version's variants. */
  deviceMeasurements: readonly MeasuredLatency[];
  /** Measurements of devices of the same class (this device's own are left out here). */
  classMeasurements: readonly MeasuredLatency[];
  /** A profile the rollout pins for every device. */
  pinned?: Profile;
  plannedAt: string;
}

/**
 * A measured winner must beat fp32 by this share to replace it: two runs of the same model on one
 * device differ by a few percent, and a variant is never worth an accuracy loss for noise.
 */
export const MEASURED_MARGIN = 0.05;
/** int8 compute is planned by rule only when the hub measured it at most this fraction of fp32's latency (small models get slower with int8). */
export const MAX_INT8_HUB_RATIO = 0.9;
/** A device is short of memory when the fp32 file takes more than this share of its RAM (weights, arena and the runtime need several times the file). */
export const MEMORY_SHARE = 1 / 8;

type Deployable = VariantDetail & { sha256: string; size: number };
interface Choice {
  variant: Deployable;
  decidedBy: DevicePlan['decidedBy'];
  reason: string;
}

/** Milliseconds with the digits that mean something at their scale. */
export function formatMs(ms: number): string {
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}
export const formatRatio = (r: number): string => `${r.toFixed(2)}x`;
const formatMb = (bytes: number): string => {
  const mb = bytes / (1024 * 1024);
  return mb < 10 ? `${mb.toFixed(1)} MB` : `${Math.round(mb)} MB`;
};
const transferSize = (v: Deployable): number => v.transfer?.size ?? v.size;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * How many other devices of a class must have measured a variant before their median stands for the
 * class: one device's number (a noisy run, a busy box, or a device reporting what it likes) would
 * otherwise re-plan every device of its class.
 */
export const MIN_CLASS_DEVICES = 2;

/**
 * Per variant sha256, the median p50 over other devices, kept only for variants at least
 * MIN_CLASS_DEVICES of them measured; `devices`: how many devices' numbers the kept medians use.
 */
export function classMedians(measurements: readonly MeasuredLatency[], excludeDeviceId: string): { p50: Map<string, number>; devices: number } {
  const bySha = new Map<string, Map<string, number>>();
  for (const m of measurements) {
    if (m.deviceId === excludeDeviceId) continue;
    let byDevice = bySha.get(m.sha256);
    if (!byDevice) bySha.set(m.sha256, (byDevice = new Map()));
    // One number per device and variant: a device listed twice does not count twice.
    byDevice.set(m.deviceId, m.p50Ms);
  }
  const p50 = new Map<string, number>();
  const devices = new Set<string>();
  for (const [sha, byDevice] of bySha) {
    if (byDevice.size < MIN_CLASS_DEVICES) continue;
    p50.set(sha, median([...byDevice.values()]));
    for (const id of byDevice.keys()) devices.add(id);
  }
  return { p50, devices: devices.size };
}

/** What the rule thinks of one variant on this class: whether it may be chosen for speed, and why. */
function ruleVerdict(v: Deployable, cls: DeviceClass, fp32: Deployable): { eligible: boolean; note: string } {
  const hubRatio = v.evaluation?.latencyRatio;
  switch (v.profile) {
    case 'fp32':
      return { eligible: true, note: 'the uploaded model: full accuracy, the baseline' };
    case 'fp16':
      return cls.gpu
        ? { eligible: true, note: 'float16 runs on this device class’s GPU' }
        : { eligible: false, note: 'float16 compute needs a GPU; on CPUs it adds Casts and runs slower' };
    case 'int8-static':
    case 'int8-dynamic':
      if (cls.int8 === null) return { eligible: false, note: 'capabilities not reported yet: int8 dot-product support unknown' };
      if (!hasInt8DotProduct(cls)) return { eligible: false, note: `no int8 dot-product instructions on ${cls.name}: int8 runs slower than float32 there` };
      if (hubRatio === undefined) return { eligible: false, note: 'no hub latency measurement to show int8 pays for this model' };
      if (hubRatio > MAX_INT8_HUB_RATIO) {
        return { eligible: false, note: `the hub measured ${formatRatio(hubRatio)} fp32 latency: the model is too small for int8 to pay (needs ≤ ${MAX_INT8_HUB_RATIO}x)` };
      }
      return { eligible: true, note: `int8 dot products (${cls.int8}); the hub measured ${formatRatio(hubRatio)} fp32 latency` };
    case 'int8-weights':
    case 'pruned':
      return { eligible: false, note: `runs at fp32 speed (weights widened at load): only a smaller download (${formatRatio(transferSize(v) / transferSize(fp32))} of fp32's)` };
  }
}

/** Measured p50s from the device itself, else from its class: one source, never a mix. */
function measuredSource(input: PlanInput, cls: DeviceClass, variants: readonly Deployable[], fp32: Deployable) {
  const own = new Map(input.deviceMeasurements.filter((m) => m.deviceId === input.deviceId).map((m) => [m.sha256, m.p50Ms]));
  const ofClass = cls.int8 === null ? { p50: new Map<string, number>(), devices: 0 } : classMedians(input.classMeasurements, input.deviceId);
  const usable = (p50: Map<string, number>) => p50.has(fp32.sha256) && variants.some((v) => v !== fp32 && p50.has(v.sha256));
  if (usable(own)) return { p50: own, where: 'on this device', own, cls: ofClass.p50 };
  if (usable(ofClass.p50)) {
    const where = `on ${ofClass.devices} other device${ofClass.devices === 1 ? '' : 's'} of class ${cls.name} (median)`;
    return { p50: ofClass.p50, where, own, cls: ofClass.p50 };
  }
  return { p50: null, where: '', own, cls: ofClass.p50 };
}

/** The lowest measured p50 wins, fp32 unless the winner is at least MEASURED_MARGIN faster. */
function byMeasurement(p50: ReadonlyMap<string, number>, where: string, variants: readonly Deployable[], fp32: Deployable): Choice {
  const fp32Ms = p50.get(fp32.sha256)!;
  const measured = variants.filter((v) => v !== fp32 && p50.has(v.sha256)).sort((a, b) => p50.get(a.sha256)! - p50.get(b.sha256)!);
  const best = measured[0]!;
  const bestMs = p50.get(best.sha256)!;
  const ratio = bestMs / fp32Ms;
  if (bestMs <= fp32Ms * (1 - MEASURED_MARGIN)) {
    return { variant: best, decidedBy: 'measurement', reason: `measured ${where}: ${best.profile} p50 ${formatMs(bestMs)} vs fp32 ${formatMs(fp32Ms)} (${formatRatio(ratio)})` };
  }
  const reason = `measured ${where}: fp32 p50 ${formatMs(fp32Ms)}; the fastest other, ${best.profile} at ${formatMs(bestMs)} (${formatRatio(ratio)}), is not at least ${MEASURED_MARGIN * 100} % faster`;
  return { variant: fp32, decidedBy: 'measurement', reason };
}

/** No measurement: fp16 on a GPU, else the int8 variant the hub measured fastest where int8 pays, else fp32 (or, short of memory, the smallest download at fp32 speed). */
function byRule(input: PlanInput, cls: DeviceClass, variants: readonly Deployable[], fp32: Deployable, verdicts: Map<Deployable, { eligible: boolean; note: string }>): Choice {
  if (cls.int8 === null) return { variant: fp32, decidedBy: 'rule', reason: 'rule: capabilities not reported yet: fp32 until they are' };
  const fp16 = variants.find((v) => v.profile === 'fp16');
  if (cls.gpu && fp16) return { variant: fp16, decidedBy: 'rule', reason: `rule: ${cls.name} has a GPU, where float16 computes faster and halves the weights` };
  const int8 = variants
    .filter((v) => (v.profile === 'int8-static' || v.profile === 'int8-dynamic') && verdicts.get(v)!.eligible)
    .sort((a, b) => a.evaluation!.latencyRatio - b.evaluation!.latencyRatio)[0];
  if (int8) {
    return { variant: int8, decidedBy: 'rule', reason: `rule: ${cls.name} has int8 dot products and the hub measured ${int8.profile} at ${formatRatio(int8.evaluation!.latencyRatio)} fp32 latency` };
  }
  const memoryMb = input.capabilities?.memoryMb ?? 0;
  if (memoryMb > 0 && fp32.size > memoryMb * 1024 * 1024 * MEMORY_SHARE) {
    const fp32Speed = variants.filter((v) => v.profile === 'fp32' || v.profile === 'int8-weights' || v.profile === 'pruned');
    const smallest = fp32Speed.reduce((a, b) => (transferSize(b) < transferSize(a) ? b : a), fp32);
    const short = `the fp32 file (${formatMb(fp32.size)}) is more than 1/${1 / MEMORY_SHARE} of this device's ${memoryMb} MB memory`;
    if (smallest !== fp32) {
      const ratio = formatRatio(transferSize(smallest) / transferSize(fp32));
      return { variant: smallest, decidedBy: 'rule', reason: `rule: ${short}: ${smallest.profile} is the smallest download (${ratio}) and runs at fp32 speed` };
    }
    return { variant: fp32, decidedBy: 'rule', reason: `rule: ${short}, but no accepted variant is a smaller download at fp32 speed` };
  }
  const why = variants.filter((v) => v !== fp32).map((v) => `${v.profile}: ${verdicts.get(v)!.note}`);
  return { variant: fp32, decidedBy: 'rule', reason: `rule: no variant is expected to run faster than fp32 on ${cls.name}, and fp32 keeps full accuracy (${why.join('; ')})` };
}

/** The accepted, deployable variant of this profile; BAD_REQUEST naming the accepted profiles when there is none. */
export function acceptedVariantOf(key: { model: string; version: string }, variants: readonly VariantDetail[], profile: Profile): VariantDetail {
  const accepted = deployable(variants);
  const v = accepted.find((x) => x.profile === profile);
  if (v) return v;
  throw new EdgefleetError('BAD_REQUEST', `profile ${profile} is not an accepted variant of ${key.model}@${key.version}: accepted are ${accepted.map((x) => x.profile).join(', ')}`);
}

function pinnedChoice(pinned: Profile, input: PlanInput, variants: readonly Deployable[]): Choice {
  return { variant: acceptedVariantOf(input, variants, pinned) as Deployable, decidedBy: 'pinned', reason: `pinned by the rollout to ${pinned}` };
}

/** The accepted variants that can be deployed (a sha256 and a signed manifest), in profile order. */
function deployable(variants: readonly VariantDetail[]): Deployable[] {
  return variants
    .filter((v): v is Deployable => v.state === 'accepted' && v.sha256 !== null && v.size !== null && v.manifest !== null)
    .sort((a, b) => PROFILES.indexOf(a.profile) - PROFILES.indexOf(b.profile));
}

/**
 * Which accepted variant of a model version a device gets, and why: a pinned profile; else measured
 * latency (the device's own benchmark, else the median of at least MIN_CLASS_DEVICES other devices
 * of its class) when fp32 and another variant were measured; else the rule from the device class
 * and the hub's evaluation; fp32 alone is the default. Every candidate is listed with its numbers and the rule's note on it.
 */
export function planDevice(input: PlanInput): DevicePlan {
  const variants = deployable(input.variants);
  const fp32 = variants.find((v) => v.profile === 'fp32');
  if (!fp32) throw new EdgefleetError('INTERNAL', `${input.model}@${input.version} has no accepted fp32 variant to plan from`);
  const cls = deviceClassOf(input.capabilities);
  const verdicts = new Map(variants.map((v) => [v, ruleVerdict(v, cls, fp32)]));
  const source = measuredSource(input, cls, variants, fp32);
  let choice: Choice;
  if (input.pinned) choice = pinnedChoice(input.pinned, input, variants);
  else if (variants.length === 1) choice = { variant: fp32, decidedBy: 'default', reason: `fp32 is the only accepted variant of ${input.model}@${input.version}` };
  else if (source.p50) choice = byMeasurement(source.p50, source.where, variants, fp32);
  else choice = byRule(input, cls, variants, fp32, verdicts);

  const candidates: PlanCandidate[] = variants.map((v) => {
    const own = source.own.get(v.sha256);
    const ofClass = source.cls.get(v.sha256);
    const verdict = verdicts.get(v)!;
    const chosenAgainstRule = v === choice.variant && !verdict.eligible;
    return {
      profile: v.profile,
      sha256: v.sha256,
      measuredP50Ms: own ?? ofClass ?? null,
      measuredOn: own !== undefined ? 'device' : ofClass !== undefined ? 'class' : null,
      hubLatencyRatio: v.evaluation?.latencyRatio ?? null,
      note: chosenAgainstRule ? `${verdict.note}; chosen by ${choice.decidedBy}` : verdict.note,
      eligible: verdict.eligible || chosenAgainstRule,
    };
  });
  return {
    deviceId: input.deviceId,
    model: input.model,
    version: input.version,
    profile: choice.variant.profile,
    sha256: choice.variant.sha256,
    decidedBy: choice.decidedBy,
    reason: choice.reason,
    deviceClass: cls.name,
    candidates,
    plannedAt: input.plannedAt,
  };
}
