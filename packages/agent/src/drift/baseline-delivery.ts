import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Compile } from 'typebox/compile';
import { DriftBaseline, extractionFeatureNames, summaryMismatch, type Manifest, type TensorSpec } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { fetchArtifactFile, type FetchArtifactOptions } from '../models/fetch-artifact.js';
import { fileSize, modelsDir } from '../models/model-files.js';

/**
 * A model version's drift baseline, as its signed manifest delivers it: inline (covered by the
 * signature itself), or as an artifact whose sha256 and size the manifest signs, kept beside the
 * model file as <sha256>.drift.json so a restart restores it without the hub. A baseline that cannot
 * be had or does not fit its model turns drift tracking off for that version only (logged as a
 * warning): the model deploys and serves regardless.
 */

const baselineCheck = Compile(DriftBaseline);

const BASELINE_SUFFIX = '.drift.json';

export function baselinePath(stateDir: string, sha256: string): string {
  return join(modelsDir(stateDir), `${sha256}${BASELINE_SUFFIX}`);
}

/** Pure: why `value` is not a baseline the agent can track `specs` with, or null when it is. */
export function baselineProblem(value: unknown, specs: { inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[] }): string | null {
  if (!baselineCheck.Check(value)) {
    const first = baselineCheck.Errors(value)[0];
    return `it does not match the DriftBaseline schema at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}`;
  }
  const baseline = value as DriftBaseline;
  const { extraction } = baseline;
  if (!extraction) return 'it has no extraction, so the agent cannot tell how tensors become its features';
  const names = extractionFeatureNames(extraction);
  for (const [key, expected] of [['features', names.features], ['outputs', names.outputs]] as const) {
    const actual = baseline[key].map((f) => f.name);
    if (actual.length !== expected.length) return `its extraction yields ${expected.length} ${key} but it lists ${actual.length}`;
    const i = actual.findIndex((n, k) => n !== expected[k]);
    if (i >= 0) return `its ${key}[${i}] is "${actual[i]}", its extraction names it "${expected[i]}"`;
  }
  for (const [key, tensors] of [['inputs', specs.inputs], ['outputs', specs.outputs]] as const) {
    const missing = extraction[key].find((e) => !tensors.some((t) => t.name === e.tensor));
    if (missing) return `its extraction reads ${key} tensor "${missing.tensor}", which the model does not have (${tensors.map((t) => t.name).join(', ')})`;
  }
  const reference = summaryMismatch(baseline, baseline.reference);
  return reference === null ? null : `its reference summary does not fit it: ${reference}`;
}

export interface BaselineDeliveryOptions {
  stateDir: string;
  /** How to download a baseline that is not on disk yet; absent (restore at start): the disk copy only. */
  fetching?: FetchArtifactOptions;
  logger: Logger;
}

/**
 * The file's bytes when they are the signed ones, else why not. Read once, and those very bytes are
 * hashed and then parsed: no gap between the check and the use. The size is looked at first, so a
 * file of another size is never read whole.
 */
async function readVerified(path: string, ref: { sha256: string; size: number }): Promise<{ bytes: Buffer } | { problem: string }> {
  const size = await fileSize(path);
  if (size === undefined) return { problem: `${path} is missing` };
  if (size !== ref.size) return { problem: `${path} is ${size} bytes, its signed size is ${ref.size}` };
  const bytes = await readFile(path);
  if (bytes.byteLength !== ref.size) return { problem: `${path} is ${bytes.byteLength} bytes, its signed size is ${ref.size}` };
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== ref.sha256) return { problem: `${path} has sha256 ${sha256}, its signed sha256 is ${ref.sha256}` };
  return { bytes };
}

/**
 * The manifest's verified drift baseline, or undefined (none, or unusable: logged). Never throws,
 * except when `fetching.signal` was aborted (the deployment was interrupted).
 */
export async function deliverBaseline(manifest: Manifest, opts: BaselineDeliveryOptions): Promise<DriftBaseline | undefined> {
  const entry = manifest.drift;
  if (!entry) return undefined;
  const log = opts.logger.child({ module: 'drift' });
  const where = { model: manifest.model, version: manifest.version, baseline: entry.sha256 };
  try {
    let value: unknown = entry.baseline;
    if (value === undefined) {
      const path = baselinePath(opts.stateDir, entry.sha256);
      let read = await readVerified(path, entry);
      if ('problem' in read) {
        if (!opts.fetching) {
          log.warn({ ...where, file: path, problem: read.problem }, `drift baseline ${path} is not usable (${read.problem}); drift is not tracked for this version until it is deployed again`);
          return undefined;
        }
        const fetched = await fetchArtifactFile(entry, BASELINE_SUFFIX, `${manifest.model}@${manifest.version}`, 'drift baseline', opts.fetching);
        read = await readVerified(fetched, entry);
        if ('problem' in read) throw new Error(`the downloaded drift baseline changed on disk: ${read.problem}`);
      }
      value = JSON.parse(read.bytes.toString('utf8'));
    }
    const problem = baselineProblem(value, manifest);
    if (problem !== null) {
      log.warn({ ...where, problem }, 'drift baseline is unusable; drift is not tracked for this version');
      return undefined;
    }
    return value as DriftBaseline;
  } catch (err) {
    if (opts.fetching?.signal?.aborted) throw err;
    log.warn({ ...where, err: (err as Error).message }, 'drift baseline could not be fetched or read; drift is not tracked for this version');
    return undefined;
  }
}
