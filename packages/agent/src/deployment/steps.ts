import { verifyManifest, type GoldenComparison } from '@edgefleet/shared';
import type { LoadedModel } from '../inference/types.js';
import { prepareCandidate } from './prepare.js';
import type { InstallStep, Step } from './reconcile.js';
import { runShadowPhase, ShadowDisagreement } from './shadow-phase.js';
import { closeQuietly, failureOf, removeFileIfUnused, type Emit, type StepContext, type StepFailure } from './step-context.js';
import { switchTo, waitForUpdateLock } from './switch-over.js';

interface Candidate {
  model: LoadedModel;
  /** Loaded by this step (not taken from the staged or standby slot), so not yet shadowed. */
  fresh: boolean;
  deferUntil?: number;
  worst?: GoldenComparison['worst'];
}

/** The loaded candidate for the step: the staged or standby one when the plan found it, else prepared from disk or the network. */
async function obtainCandidate(ctx: StepContext, step: InstallStep, emit: Emit): Promise<Candidate> {
  if (step.source === 'staged') {
    const staged = ctx.staged.take(step.name, step.sha256);
    if (staged) return { model: staged.model, fresh: false, ...(staged.deferUntil === undefined ? {} : { deferUntil: staged.deferUntil }) };
  }
  if (step.source === 'standby') {
    const model = ctx.standby.take(step.name, step.sha256);
    if (model) return { model, fresh: false };
  }
  // The signature is checked before a single byte is read; the file's digest once, by fetchModelFile.
  const manifest = verifyManifest(step.assignment.manifest, ctx.hubPublicKey);
  // A slot emptied between plan and step (a standby that timed out) falls back to the file.
  const fallback = step.source === 'staged' || step.source === 'standby' ? { ...step, source: 'disk' as const } : step;
  const { model, worst } = await prepareCandidate(ctx, fallback, manifest, emit);
  return { model, fresh: true, worst };
}

/** Interrupted by a newer document or by stop: nothing to report or remember. */
const interrupted = (): StepFailure => ({ code: 'UNAVAILABLE', message: 'interrupted', retryable: true, aborted: true });

/**
 * verify manifest → download → verify file → load → golden check → (shadow) → ready, or (deferral)
 * → switch. On any failure the previous version stays active, the candidate is closed, a bad file is
 * deleted, and the failure is returned (the runner reports and remembers it).
 */
export async function runInstall(ctx: StepContext, step: InstallStep): Promise<StepFailure | undefined> {
  const { name, version, sha256 } = step;
  const base = { type: 'deployment' as const, model: name, version, sha256, ...(step.assignment.rolloutId ? { rolloutId: step.assignment.rolloutId } : {}) };
  const emit: Emit = (phase, extra = {}) => ctx.publishEvent({ ...base, phase, ...extra });
  let candidate: LoadedModel | undefined;
  try {
    const got = await obtainCandidate(ctx, step, emit);
    candidate = got.model;
    const spec = step.assignment.shadow;
    // Shadowing needs an active version to compare with; a staged or standby candidate has been judged already.
    if (got.fresh && spec && ctx.shadow && ctx.table.get(name)) {
      const result = await runShadowPhase(ctx, ctx.shadow, candidate, spec, emit);
      if (!result) {
        await closeQuietly(ctx, candidate);
        candidate = undefined;
        return interrupted();
      }
    }
    if (!step.activate) {
      await ctx.staged.put({ model: candidate, ...(got.deferUntil === undefined ? {} : { deferUntil: got.deferUntil }) });
      candidate = undefined;
      ctx.logger.info({ model: name, version, sha256 }, 'model prepared; waiting for the go to switch');
      emit('ready');
      return undefined;
    }
    const deferral = await waitForUpdateLock(ctx, step, emit, got.deferUntil);
    // A newer document that came during the download, load or deferral ends the step before the
    // switch: the hub may have rolled back or paused meanwhile, and that version must not serve.
    if (deferral?.interrupted || ctx.waitSignal.aborted) {
      const deferUntil = deferral?.deferUntil ?? got.deferUntil;
      // Kept loaded: the newer document may still want it, and then only the switch is left to do.
      await ctx.staged.put({ model: candidate, readyReported: false, ...(deferUntil === undefined ? {} : { deferUntil }) });
      candidate = undefined;
      return interrupted();
    }
    const switching = candidate;
    candidate = undefined;
    try {
      await switchTo(ctx, step, switching, emit, got.worst);
    } catch (err) {
      // Only agent.db refusing the switch throws, before the table changed: the candidate never served.
      if (ctx.table.get(name) !== switching) candidate = switching;
      throw err;
    }
    return undefined;
  } catch (err) {
    const failure = failureOf(err);
    if (candidate) await closeQuietly(ctx, candidate);
    if (ctx.signal.aborted) return { ...failure, aborted: true };
    const kept = ctx.table.get(name)?.version;
    const shadow = err instanceof ShadowDisagreement ? { shadow: err.result } : {};
    ctx.logger.warn({ model: name, version, sha256, code: failure.code, err: failure.message, keptVersion: kept }, 'deployment failed');
    emit('failed', { code: failure.code, message: failure.message, retryable: failure.retryable, ...shadow, ...(kept ? { keptVersion: kept } : {}) });
    return failure;
  }
}

export async function runRemove(ctx: StepContext, step: Extract<Step, { kind: 'remove' }>): Promise<void> {
  const model = ctx.table.deactivate(step.name);
  if (model) await closeQuietly(ctx, model);
  await ctx.standby.drop(step.name);
  await ctx.staged.discard(step.name);
  for (const row of ctx.store.listModels().filter((m) => m.name === step.name)) {
    ctx.store.deleteModel(row.name, row.version);
    await removeFileIfUnused(ctx, row.sha256, row);
  }
  ctx.logger.info({ model: step.name, version: step.version }, 'model removed');
  ctx.publishEvent({ type: 'deployment', model: step.name, version: step.version, sha256: step.sha256, phase: 'removed' });
}
