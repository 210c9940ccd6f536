import { EdgefleetError, type ShadowResult, type ShadowSpec } from '@edgefleet/shared';
import type { LoadedModel } from '../inference/types.js';
import type { Emit, ShadowRunner, StepContext } from './step-context.js';

export const SHADOW_DEFAULTS = { minSamples: 50, maxDurationSec: 300 } as const;

/**
 * Pure: the reason to refuse the switch, when the spec asks for an agreement the shadow phase did
 * not reach. No samples is no evidence either way (a device nobody used in the window), so it passes.
 */
export function shadowRefusal(result: ShadowResult, spec: ShadowSpec): string | undefined {
  if (spec.minAgreement === undefined || result.samples === 0 || result.agreement >= spec.minAgreement) return undefined;
  return `shadow agreement ${result.agreement.toFixed(3)} over ${result.samples} samples (max abs difference ${result.maxAbsDiff.toPrecision(3)}) is below minAgreement ${spec.minAgreement}`;
}

/**
 * Runs the candidate beside the active version on sampled local requests, reporting progress in
 * tenths of minSamples and the result. Returns the result, or undefined when interrupted (agent
 * stopping, newer document); throws SHADOW_DISAGREEMENT when the agreement is below the spec's.
 */
export async function runShadowPhase(ctx: StepContext, shadow: ShadowRunner, candidate: LoadedModel, spec: ShadowSpec, emit: Emit): Promise<ShadowResult | undefined> {
  const minSamples = spec.minSamples ?? SHADOW_DEFAULTS.minSamples;
  const opts = { sampleRate: spec.sampleRate, minSamples, maxDurationSec: spec.maxDurationSec ?? SHADOW_DEFAULTS.maxDurationSec };
  emit('shadow', { progress: 0 });
  let reportedTenths = 0;
  const result = await shadow.run(candidate, opts, ctx.waitSignal, (samples) => {
    // Whole tenths below the end: the final event carries progress 1 with the result.
    const tenths = Math.floor((samples * 10) / minSamples);
    if (tenths > reportedTenths && tenths < 10) {
      reportedTenths = tenths;
      emit('shadow', { progress: tenths / 10 });
    }
  });
  if (ctx.waitSignal.aborted) return undefined;
  ctx.logger.info({ model: candidate.name, version: candidate.version, ...result }, 'shadow phase done');
  emit('shadow', { progress: Math.min(1, result.samples / minSamples), shadow: result });
  const refusal = shadowRefusal(result, spec);
  if (refusal) throw new ShadowDisagreement(refusal, result);
  return result;
}

/** The failure of a shadow phase, carrying its result for the `failed` event. */
export class ShadowDisagreement extends EdgefleetError {
  constructor(
    message: string,
    readonly result: ShadowResult,
  ) {
    super('SHADOW_DISAGREEMENT', message);
  }
}
