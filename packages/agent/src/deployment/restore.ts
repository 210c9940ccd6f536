import type { Logger } from 'pino';
import type { ModelRuntime, ModelTable } from '../inference/types.js';
import { hasVerifiedFile } from '../models/model-files.js';
import type { AgentStore } from '../store/agent-store.js';

/**
 * At start, loads the models the store marks active, so the agent serves before the hub is
 * reachable. A file that is missing or no longer matches its digest is not loaded: the model is
 * marked inactive and the next desired document installs it again.
 */
export async function restoreActiveModels(opts: { store: AgentStore; runtime: ModelRuntime; table: ModelTable; logger: Logger }): Promise<void> {
  const log = opts.logger.child({ module: 'deployment' });
  for (const row of opts.store.listModels().filter((m) => m.active)) {
    const { name, version, sha256 } = row;
    try {
      if (!(await hasVerifiedFile(row.path, sha256, row.manifest.size))) {
        log.error({ model: name, version, sha256, path: row.path }, 'active model file is missing or does not match its sha256; not loading it');
        opts.store.setInactive(name);
        continue;
      }
      const loaded = await opts.runtime.load({
        name,
        version,
        sha256,
        profile: row.profile,
        path: row.path,
        inputs: row.manifest.inputs,
        outputs: row.manifest.outputs,
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
