import { DriftBaseline, type BaselineInfo } from '@edgefleet/shared';
import { Compile } from 'typebox/compile';

/**
 * The versions' drift baselines as the rest of the hub reads them: ingest checks each summary
 * against its version's baseline, evaluation scores windows against it, the API shows its info.
 * Reads are served from memory (a baseline is loaded from its artifact once, then cached), because
 * ingest asks for every drift record it admits.
 */
export interface DriftBaselines {
  /** The version's baseline, or undefined when it has none (drift off for it). */
  get(model: string, version: string): DriftBaseline | undefined;
  info(model: string, version: string): BaselineInfo | undefined;
  /** Every version with a baseline. */
  list(): BaselineInfo[];
}

/** What the baselines are read from: the rows (baseline-repo.ts) and the artifact files. */
export interface DriftBaselineSources {
  baseline(model: string, version: string): BaselineInfo | undefined;
  baselines(): BaselineInfo[];
  /** The artifact's bytes (read synchronously: once per version, then cached). */
  readArtifact(sha256: string): Uint8Array;
  /** Told once per stored baseline that cannot be used (its artifact missing or damaged). */
  unreadable(model: string, version: string, sha256: string, problem: string): void;
}

const checkBaseline = Compile(DriftBaseline);

/**
 * DriftBaselines over SQLite and the artifact store. A baseline is parsed and checked against its
 * schema once, then served from memory; `invalidate` after a rebuild. A file that is missing or
 * damaged turns drift off for that version (get answers undefined, reported once through
 * `unreadable`) instead of throwing: ingest asks on the publish path and evaluation inside a chunk
 * transaction, so a throw would refuse every record of the version and roll the chunk back forever.
 * Uploading the reference again rebuilds the baseline (and invalidates this).
 */
export function createDriftBaselines(src: DriftBaselineSources): DriftBaselines & { invalidate(model: string, version: string): void } {
  const cache = new Map<string, { info: BaselineInfo; baseline?: DriftBaseline; unreadable?: true }>();
  const key = (model: string, version: string) => `${model}@${version}`;

  function entry(model: string, version: string) {
    const k = key(model, version);
    let hit = cache.get(k);
    if (!hit) {
      const info = src.baseline(model, version);
      if (!info) return undefined;
      hit = { info };
      cache.set(k, hit);
    }
    return hit;
  }

  /** Reads and checks the artifact into `hit.baseline`; what is wrong with it, or null. */
  function load(hit: { info: BaselineInfo; baseline?: DriftBaseline }): string | null {
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(src.readArtifact(hit.info.sha256)).toString('utf8'));
    } catch (err) {
      return `cannot be read: ${(err as Error).message}`;
    }
    if (!checkBaseline.Check(value)) {
      const first = checkBaseline.Errors(value)[0];
      return `does not match its schema at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}`;
    }
    hit.baseline = value;
    return null;
  }

  return {
    get(model, version) {
      const hit = entry(model, version);
      if (!hit || hit.unreadable) return undefined;
      if (!hit.baseline) {
        const problem = load(hit);
        if (problem !== null) {
          hit.unreadable = true;
          src.unreadable(model, version, hit.info.sha256, problem);
          return undefined;
        }
      }
      return hit.baseline;
    },
    info: (model, version) => entry(model, version)?.info,
    list: () => src.baselines(),
    invalidate(model, version) {
      cache.delete(key(model, version));
    },
  };
}
