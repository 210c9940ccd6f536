import { readFile } from 'node:fs/promises';
import { checkCalibrationSet } from '../compression/evaluation-data.js';
import { openSession } from '../compression/variant-session.js';
import { decodeCalibrationFile } from '../models/calibration-file.js';
import type { BaselineBuildMessage, BaselineBuildRequest } from './baseline-builder.js';
import { computeBaseline } from './baseline-compute.js';

/**
 * The baseline build process (forked by baseline-builder.ts): reads the stored reference file and
 * the fp32 model from disk, runs the model on every sample in onnxruntime and sends the baseline.
 * Everything heavy stays here, so the hub's event loop only sees one message.
 */

function post(msg: BaselineBuildMessage): void {
  process.send?.(msg);
}

async function runJob({ job }: BaselineBuildRequest): Promise<BaselineBuildMessage> {
  const reference = decodeCalibrationFile(await readFile(job.referencePath));
  checkCalibrationSet(reference);
  const session = await openSession(await readFile(job.modelPath), 'fp32 model');
  try {
    const result = await computeBaseline(job.signature, reference, (inputs) => session.run(inputs));
    return { type: 'done', ...result };
  } finally {
    await session.release();
  }
}

process.once('message', (request: BaselineBuildRequest) => {
  runJob(request).then(post, (err: unknown) => post({ type: 'error', error: err instanceof Error ? err.message : String(err) }));
});
// The hub is gone (or cancelled this build): nobody is left to send the baseline to.
process.once('disconnect', () => process.exit(0));
