import type { GoldenComparison } from '@edgefleet/shared';
import type { LoadedModel } from '../inference/types.js';
import { writeManifestSidecar } from '../models/model-files.js';
import type { InstallStep } from './reconcile.js';
import { boundedText, closeQuietly, removeFileIfUnused, type Emit, type StepContext } from './step-context.js';

export const DEFAULT_MAX_DEFER_SEC = 600;
const LOCK_REASON_MAX = 256;

/**
 * Before a switch: while a local application holds the update lock, reports `deferred` and waits
 * until the lock is free or the deadline passes (then switches regardless). `deferUntil` carries a
 * deadline set by an earlier, interrupted wait for the same candidate, so documents arriving while
 * it waits cannot push the switch out for ever. Returns nothing when no lock was held, else the
 * deadline and whether the wait was interrupted (stop, or a newer document).
 */
export async function waitForUpdateLock(ctx: StepContext, step: InstallStep, emit: Emit, deferUntil?: number): Promise<{ deferUntil: number; interrupted: boolean } | undefined> {
  const held = ctx.updateLock?.held() ?? [];
  if (!ctx.updateLock || held.length === 0) return undefined;
  const until = deferUntil ?? ctx.now() + 1000 * (step.assignment.maxDeferSec ?? ctx.maxDeferSec);
  // A limit of 0 (or a carried deadline already past) means no deferral at all.
  if (until <= ctx.now()) return undefined;
  const reason = boundedText(held.map((l) => l.reason || 'no reason given').join('; '), LOCK_REASON_MAX);
  ctx.logger.info({ model: step.name, version: step.version, locks: held.length, lockReason: reason, deferUntil: until }, 'switch deferred by the update lock');
  emit('deferred', { lockReason: reason, deferUntil: until });
  const free = await ctx.updateLock.waitUntilFree(until, ctx.waitSignal);
  if (ctx.waitSignal.aborted) return { deferUntil: until, interrupted: true };
  if (!free) ctx.logger.warn({ model: step.name, version: step.version }, 'update lock still held at the deferral limit; switching regardless');
  return { deferUntil: until, interrupted: false };
}

/**
 * Keeps the active version and the one it replaced (for a quick way back; the newest other one when
 * nothing was replaced); deletes the rest. The replaced one is named, not guessed from install
 * times: a version prepared and then abandoned was installed later than the one that served.
 */
async function pruneOldVersions(ctx: StepContext, name: string, previousVersion: string | undefined): Promise<void> {
  const rows = ctx.store.listModels().filter((m) => m.name === name && !m.active);
  const newestFirst = rows.sort((a, b) => b.installedAt - a.installedAt);
  const kept = newestFirst.find((m) => m.version === previousVersion) ?? newestFirst[0];
  const old = newestFirst.filter((m) => m !== kept);
  for (const row of old) {
    ctx.store.deleteModel(row.name, row.version);
    await removeFileIfUnused(ctx, row.sha256, row);
  }
}

/**
 * Makes `candidate` the served version. agent.db first: when it cannot take the write (a full disk)
 * this throws with the previous version still serving, instead of a failure reported while the new
 * one serves. After the switch nothing may turn the deployment into a failure: the replaced version
 * finishes what it holds and stays loaded as standby (memory allowing), and a health window starts
 * when the assignment asks for one.
 */
export async function switchTo(ctx: StepContext, step: InstallStep, candidate: LoadedModel, emit: Emit, worst?: GoldenComparison['worst']): Promise<void> {
  const { name, version, sha256 } = step;
  ctx.store.setActive(name, version);
  const replaced = ctx.table.activate(candidate);
  // In the same tick as the switch: a verdict of the old window can no longer land on the new version.
  ctx.onSwitch(name);
  // The same content served already (that window switched back to it while this step waited for the
  // update lock): a second copy is no way back, only memory.
  const previous = replaced?.sha256 === sha256 ? undefined : replaced;
  if (replaced && !previous) void closeQuietly(ctx, replaced);
  const baseline = previous ? ctx.table.recent(name, previous.version) : undefined;

  // Beside the file, so a lost agent.db does not take the verified model with it (restore.ts).
  await writeManifestSidecar(ctx.stateDir, { activatedAt: Date.now(), signed: step.assignment.manifest }).catch((err: Error) =>
    ctx.logger.warn({ model: name, version, err: err.message }, 'could not keep the signed manifest beside the model file'),
  );
  ctx.logger.info({ model: name, version, sha256, source: step.source, worst }, 'model active');
  emit('active');

  const health = step.assignment.healthWindow;
  if (previous) {
    const size = ctx.store.listModels().find((m) => m.name === name && m.version === previous.version)?.manifest.size ?? 0;
    // A health window can only switch back to a version that is still there: keep it loaded that long.
    await ctx.standby.keep(previous, size, health ? health.durationSec * 1000 : 0);
  }
  if (health && previous && baseline) {
    ctx.watchSwitch({
      name,
      version,
      sha256,
      ...(step.assignment.rolloutId ? { rolloutId: step.assignment.rolloutId } : {}),
      spec: health,
      previous: { version: previous.version, sha256: previous.sha256 },
      baseline,
    });
  } else if (health) {
    ctx.logger.info({ model: name, version }, 'no previous version to compare with or return to: no health window');
  }
  // The runner clears this assignment's failure record (it copes with agent.db refusing the write).
  await pruneOldVersions(ctx, name, previous?.version).catch((err: Error) =>
    ctx.logger.warn({ model: name, err: err.message }, 'could not delete older versions; the next activation tries again'),
  );
}
