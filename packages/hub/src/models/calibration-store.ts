import type { CalibrationSummary } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { ArtifactStore } from './artifact-store.js';
import type { CalibrationSet } from './calibration-data.js';
import { encodeCalibrationFile } from './calibration-file.js';
import type { VariantRepo } from './variant-repo.js';

/**
 * A version's calibration set on disk and its summary in SQLite. Uploads of one version are stored
 * one after another, so each sees the set it replaces and removes that file: two at once would both
 * replace the same set and leave one of their own files behind. A replaced file is removed at once
 * when no build runs, else after the build, whose process may be about to read it.
 */
export function createCalibrationStore(deps: {
  variants: VariantRepo;
  artifacts: ArtifactStore;
  removeUnreferenced(shas: string[]): Promise<void>;
  /** True while a variant build runs (one at a time hub-wide). */
  buildRunning(): boolean;
  log: Logger;
}) {
  const { variants, artifacts, removeUnreferenced, log } = deps;
  const retired = new Set<string>();
  const uploads = new Map<string, Promise<unknown>>();

  function oneAtATime<T>(key: string, task: () => Promise<T>): Promise<T> {
    const result = (uploads.get(key) ?? Promise.resolve()).then(task, task);
    const tail = result.catch(() => undefined);
    uploads.set(key, tail);
    void tail.then(() => {
      if (uploads.get(key) === tail) uploads.delete(key);
    });
    return result;
  }

  async function retire(sha256: string): Promise<void> {
    if (deps.buildRunning()) retired.add(sha256);
    else await removeUnreferenced([sha256]);
  }

  async function store(model: string, version: string, set: CalibrationSet): Promise<CalibrationSummary> {
    const previous = variants.calibration(model, version);
    const file = await artifacts.put(encodeCalibrationFile(set));
    const summary: CalibrationSummary = {
      sha256: file.sha256,
      samples: set.samples,
      inputs: set.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.slice(1) })),
      labels: set.labels !== undefined,
      uploadedAt: new Date().toISOString(),
    };
    try {
      variants.saveCalibration(model, version, summary);
    } catch (err) {
      await removeUnreferenced([file.sha256]);
      throw err;
    }
    if (previous && previous.sha256 !== file.sha256) await retire(previous.sha256);
    log.info({ model, version, sha256: file.sha256, samples: set.samples, labels: summary.labels }, 'calibration data stored');
    return summary;
  }

  return {
    /** Stores a parsed set as the version's calibration data, replacing (and removing) the one before. */
    store: (model: string, version: string, set: CalibrationSet) => oneAtATime(`${model}@${version}`, () => store(model, version, set)),
    /** After a build: removes the files replaced while it ran. */
    async removeRetired(): Promise<void> {
      const shas = [...retired];
      retired.clear();
      try {
        await removeUnreferenced(shas);
      } catch (err) {
        log.warn({ err, shas }, 'replaced calibration files could not be removed');
      }
    },
  };
}
