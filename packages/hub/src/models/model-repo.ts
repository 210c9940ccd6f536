import { AccuracyBudget, EdgefleetError, type ModelVersion, type SignedManifest, type TensorSpec } from '@edgefleet/shared';
import type { Db } from '../store/database.js';
import { storedJsonReader } from '../store/stored-json.js';

interface VersionRow {
  model: string;
  version: string;
  sha256: string;
  size: number;
  inputs: string;
  outputs: string;
  manifest: string;
  created_at: string;
  budget?: string | null;
}

const readBudget = storedJsonReader(AccuracyBudget);

function budgetOf(r: VersionRow): Pick<ModelVersion, 'budget'> {
  if (!r.budget) return {};
  const read = readBudget(r.budget);
  if ('error' in read) throw new EdgefleetError('STORAGE_ERROR', `budget of ${r.model}@${r.version} ${read.error}`);
  return { budget: read.value };
}

function toVersion(r: VersionRow): ModelVersion {
  return {
    name: r.model,
    version: r.version,
    sha256: r.sha256,
    size: r.size,
    inputs: JSON.parse(r.inputs) as TensorSpec[],
    outputs: JSON.parse(r.outputs) as TensorSpec[],
    createdAt: r.created_at,
    manifest: JSON.parse(r.manifest) as SignedManifest,
    ...budgetOf(r),
  };
}

/** SQL for the model registry. */
export function createModelRepo(db: Db) {
  const insertModel = db.prepare('INSERT OR IGNORE INTO models (name, created_at) VALUES (?, ?)');
  const insertVersion = db.prepare(
    'INSERT INTO model_versions (model, version, sha256, size, inputs, outputs, manifest, created_at, budget) VALUES (@name, @version, @sha256, @size, @inputs, @outputs, @manifest, @createdAt, @budget)',
  );
  const one = db.prepare('SELECT * FROM model_versions WHERE model = ? AND version = ?');
  const ofModel = db.prepare('SELECT * FROM model_versions WHERE model = ? ORDER BY created_at, rowid');
  const models = db.prepare('SELECT m.name, v.version FROM models m JOIN model_versions v ON v.model = m.name ORDER BY m.name, v.created_at, v.rowid');
  // A manifest names every artifact it needs (model, transfer copy, golden file) by its hex digest.
  const bySha = db.prepare('SELECT count(*) FROM model_versions WHERE sha256 = ? OR manifest LIKE ?').pluck();

  return {
    insert(v: ModelVersion): void {
      db.transaction(() => {
        insertModel.run(v.name, v.createdAt);
        insertVersion.run({
          ...v,
          inputs: JSON.stringify(v.inputs),
          outputs: JSON.stringify(v.outputs),
          manifest: JSON.stringify(v.manifest),
          budget: v.budget ? JSON.stringify(v.budget) : null,
        });
      })();
    },
    /** Runs `fn` in one SQLite transaction (nested calls become savepoints), e.g. a version and its fp32 variant. */
    transaction<T>(fn: () => T): T {
      return db.transaction(fn)();
    },
    get(name: string, version: string): ModelVersion | undefined {
      const row = one.get(name, version) as VersionRow | undefined;
      return row && toVersion(row);
    },
    versions(name: string): ModelVersion[] {
      return (ofModel.all(name) as VersionRow[]).map(toVersion);
    },
    list(): Array<{ name: string; versions: string[]; latest: string }> {
      const byName = new Map<string, string[]>();
      for (const r of models.all() as Array<{ name: string; version: string }>) {
        byName.set(r.name, [...(byName.get(r.name) ?? []), r.version]);
      }
      return [...byName].map(([name, versions]) => ({ name, versions, latest: versions[versions.length - 1]! }));
    },
    /** True when some stored version's file or manifest (golden file, transfer copy) uses this artifact. */
    isReferenced(sha256: string): boolean {
      return (bySha.get(sha256, `%${sha256}%`) as number) > 0;
    },
  };
}
export type ModelRepo = ReturnType<typeof createModelRepo>;
