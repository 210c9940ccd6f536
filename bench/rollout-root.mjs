// Which checkout the rollout bench measures: EF_BENCH_ROOT when set (e.g. a worktree of an earlier
// commit), else the repository this file lives in. The hub, the shared schemas the simulated devices
// validate against and the ONNX builder all come from that one root, so they always match.
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const benchRoot = process.env.EF_BENCH_ROOT ? resolve(process.env.EF_BENCH_ROOT) : fileURLToPath(new URL('..', import.meta.url));

/** The root's built @edgefleet/shared (its dist/, so run the build first). */
export const importShared = () => import(pathToFileURL(join(benchRoot, 'packages/shared/dist/index.js')).href);

/** The root's ONNX builder, for the uploaded models. */
export const importOnnxBuilder = () => import(pathToFileURL(join(benchRoot, 'packages/shared/dist/onnx/index.js')).href);
