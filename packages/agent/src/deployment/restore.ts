import { verifyManifest, type Manifest } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { deliverBaseline } from '../drift/baseline-delivery.js';
import type { ModelRuntime, ModelTable } from '../inference/types.js';
import { fileSize, hasVerifiedFile, modelPath, readManifestSidecars } from '../models/model-files.js';
import type { AgentStore } from '../store/agent-store.js';

/**
 * When agent.db was made at this start (it was missing or corrupt), puts back the models whose
 * files are still here: each sidecar's signed manifest must verify with the pinned hub key and
 * name a file of its size (restoreActiveModels then checks the sha256 before loading). Per model
 * name the version activated last becomes active again; the hub's retained desired document
 * rebuilds the rest. Returns how many models were put back.
 */
export async function rebuildFromModelFiles(opts: { stateDir: string; hubPublicKey: string; store: AgentStore; logger: Logger }): Promise<number> {
  const log = opts.logger.child({ module: 'deployment' });
  const byName = new Map<string, Array<{ manifest: Manifest; activatedAt: number; path: string }>>();
  for (const entry of await readManifestSidecars(opts.stateDir)) {
    const path = modelPath(opts.stateDir, entry.sha256);
    try {
      if (!entry.sidecar) throw new Error(entry.problem ?? 'unreadable');
      const manifest = verifyManifest(entry.sidecar.signed, opts.hubPublicKey);
      if (manifest.sha256 !== entry.sha256) throw new Error(`it describes ${manifest.sha256}, not the file it sits beside`);
      if ((await fileSize(path)) !== manifest.size) throw new Error(`${path} is missing or not ${manifest.size} bytes`);
      const list = byName.get(manifest.model) ?? [];
      list.push({ manifest, activatedAt: entry.sidecar.activatedAt, path });
      byName.set(manifest.model, list);
    } catch (err) {
      log.warn({ sidecar: entry.path, err: (err as Error).message }, 'model manifest sidecar not usable; its model is not restored');
    }
  }
  let restored = 0;
  for (const [name, versions] of byName) {
    versions.sort((a, b) => a.activatedAt - b.activatedAt);
    for (const { manifest, path } of versions) {
      opts.store.putModel({ name, version: manifest.version, sha256: manifest.sha256, profile: manifest.profile, path, manifest });
      restored++;
    }
    const latest = versions[versions.length - 1]!.manifest;
    opts.store.setActive(name, latest.version);
    log.info({ model: name, version: latest.version, sha256: latest.sha256 }, 'model restored from its signed manifest and file after agent.db was rebuilt');
  }
  return restored;
}

/**
 * At start, loads the models the store marks active, so the agent serves before the hub is
 * reachable. A file that is missing or no longer matches its digest is not loaded: the model is
 * marked inactive and the next desired document installs it again.
 */
export async function restoreActiveModels(opts: { store: AgentStore; runtime: ModelRuntime; table: ModelTable; logger: Logger; stateDir: string }): Promise<void> {
  const log = opts.logger.child({ module: 'deployment' });
  for (const row of opts.store.listModels().filter((m) => m.active)) {
    const { name, version, sha256 } = row;
    try {
      if (!(await hasVerifiedFile(row.path, sha256, row.manifest.size))) {
        log.error({ model: name, version, sha256, path: row.path }, 'active model file is missing or does not match its sha256; not loading it');
        opts.store.setInactive(name);
        continue;
      }
      // Only the copy on disk: the hub may be unreachable at start.
      const drift = await deliverBaseline(row.manifest, { stateDir: opts.stateDir, logger: opts.logger });
      const loaded = await opts.runtime.load({
        name,
        version,
        sha256,
        profile: row.profile,
        path: row.path,
        inputs: row.manifest.inputs,
        outputs: row.manifest.outputs,
        ...(drift ? { drift } : {}),
      });
      const previous = opts.table.activate(loaded);
      if (previous) await previous.close();
      log.info({ model: name, version, sha256 }, 'model active');
    } catch (err) {
      log.error({ model: name, version, sha256, err: (err as Error).message }, 'loading the active model at start failed');
      opts.store.setInactive(name);
    }
  }
}
