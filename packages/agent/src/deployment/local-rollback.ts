import type { Logger } from 'pino';
import { deliverBaseline } from '../drift/baseline-delivery.js';
import type { LoadedModel, ModelRuntime, ModelTable } from '../inference/types.js';
import { hasVerifiedFile, readManifestSidecars, writeManifestSidecar } from '../models/model-files.js';
import type { AgentStore } from '../store/agent-store.js';
import type { Switched } from './step-context.js';
import type { StandbyKeeper } from './standby.js';

export interface LocalRollbackContext {
  stateDir: string;
  store: AgentStore;
  table: ModelTable;
  runtime: ModelRuntime;
  standby: StandbyKeeper;
  logger: Logger;
}

/** The previous version, loaded: the standby when it is still there (a switch), else its file (a load, never a download). */
async function loadPrevious(ctx: LocalRollbackContext, switched: Switched): Promise<LoadedModel | undefined> {
  const { name, previous } = switched;
  const standby = ctx.standby.take(name, previous.sha256);
  if (standby) return standby;
  const row = ctx.store.listModels().find((m) => m.name === name && m.version === previous.version && m.sha256 === previous.sha256);
  if (!row || !(await hasVerifiedFile(row.path, row.sha256, row.manifest.size))) return undefined;
  // The baseline was saved beside the file when this version was deployed; never a download here either.
  const drift = await deliverBaseline(row.manifest, { stateDir: ctx.stateDir, logger: ctx.logger });
  return ctx.runtime.load({
    name,
    version: row.version,
    sha256: row.sha256,
    profile: row.profile,
    path: row.path,
    inputs: row.manifest.inputs,
    outputs: row.manifest.outputs,
    ...(drift ? { drift } : {}),
  });
}

/** Marks the previous version's sidecar as activated last, so a rebuild after agent.db is lost serves it, not the unhealthy one. */
async function restampSidecar(ctx: LocalRollbackContext, sha256: string): Promise<void> {
  const entry = (await readManifestSidecars(ctx.stateDir)).find((e) => e.sha256 === sha256 && e.sidecar);
  if (entry?.sidecar) await writeManifestSidecar(ctx.stateDir, { ...entry.sidecar, activatedAt: Date.now() });
}

/**
 * The health window found `switched` worse than the version it replaced: serves the previous version
 * again and records that in agent.db. The switch itself is synchronous once the previous version is
 * loaded, and happens only if nothing else changed the model meanwhile (a newer deployment aborts
 * `signal`). The unhealthy version finishes what it holds, then closes. Returns false when it could
 * not switch back (nothing to return to, or overtaken); the caller reports only a true.
 */
export async function switchBack(ctx: LocalRollbackContext, switched: Switched, signal: AbortSignal): Promise<boolean> {
  const { name, version, previous } = switched;
  const log = ctx.logger;
  let back: LoadedModel | undefined;
  try {
    back = await loadPrevious(ctx, switched);
  } catch (err) {
    log.error({ model: name, version: previous.version, err: (err as Error).message }, 'cannot load the previous version to switch back to');
  }
  if (!back) {
    log.error({ model: name, version, previous: previous.version }, 'health window failed the new version but the previous one is gone; keeping the new one');
    return false;
  }
  const current = ctx.table.get(name);
  if (signal.aborted || current?.sha256 !== switched.sha256) {
    await back.close().catch(() => undefined);
    return false;
  }
  try {
    ctx.store.setActive(name, previous.version);
  } catch (err) {
    log.error({ model: name, version: previous.version, err: (err as Error).message }, 'agent.db refused the switch back; keeping the new version');
    await back.close().catch(() => undefined);
    return false;
  }
  const bad = ctx.table.activate(back);
  if (bad) {
    void bad.close().catch((err: Error) => log.warn({ model: name, version, err: err.message }, 'closing the unhealthy version failed'));
  }
  await restampSidecar(ctx, previous.sha256).catch((err: Error) =>
    log.warn({ model: name, version: previous.version, err: err.message }, 'could not mark the previous version as last activated beside its file'),
  );
  return true;
}
