import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeModel, readSignature } from '@edgefleet/shared/onnx';
import { createModelRuntime, type PooledModelRuntime } from '../../src/inference/model-runtime.js';
import { createModelTable } from '../../src/inference/model-table.js';
import type { ModelTable } from '../../src/inference/types.js';
import { createLocalApi, type LocalApi, type LocalApiOptions } from '../../src/local-api/local-api.js';
import { silentLogger, tempDir } from './temp.js';

export interface LocalApiRig {
  dir: { path: string; remove: () => Promise<void> };
  runtime: PooledModelRuntime;
  table: ModelTable;
  api: LocalApi;
  socketPath: string;
  /** Stops the API and the runtime and removes the directory. */
  stop(): Promise<void>;
}

/**
 * The local API, started on a real Unix socket in a temp dir, serving each of `models` (name → ONNX
 * bytes) as version "1" on real onnxruntime with one worker.
 */
export async function startLocalApiRig(
  prefix: string,
  models: Record<string, Uint8Array>,
  opts: Pick<LocalApiOptions, 'tcpPort' | 'bodyLimits' | 'updateLock' | 'shadow'> = {},
): Promise<LocalApiRig> {
  const dir = await tempDir(prefix);
  const runtime = createModelRuntime({ workers: 1, threads: 1, logger: silentLogger });
  const table = createModelTable();
  const socketPath = join(dir.path, 'agent.sock');
  const api = createLocalApi({ ...opts, socketPath, models: table, logger: silentLogger });
  const rig: LocalApiRig = {
    dir,
    runtime,
    table,
    api,
    socketPath,
    async stop() {
      await api.stop();
      await runtime.stop();
      await dir.remove();
    },
  };
  try {
    for (const [name, bytes] of Object.entries(models)) {
      const path = join(dir.path, `${name}.onnx`);
      await writeFile(path, bytes);
      table.activate(await runtime.load({ name, version: '1', sha256: 'test', profile: 'fp32', path, ...readSignature(decodeModel(bytes)) }));
    }
    await api.start();
  } catch (err) {
    await rig.stop();
    throw err;
  }
  return rig;
}
