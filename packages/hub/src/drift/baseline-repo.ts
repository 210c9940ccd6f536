import { BaselineInfo, EdgefleetError, type SignedManifest } from '@edgefleet/shared';
import { readStoredManifest } from '../rollouts/rollout-rows.js';
import type { Db } from '../store/database.js';
import { storedJsonReader } from '../store/stored-json.js';

/**
 * SQL for baselines and reference sets (migration 006), and for the signed manifests of a version
 * that name its baseline: the version's own (model_versions) and every accepted variant's.
 */

export interface ReferenceRow {
  sha256: string;
  samples: number;
  uploadedAt: string;
}

/** A stored manifest to re-sign: where it lives and what it says. */
export interface StoredManifest {
  table: 'model_versions' | 'model_variants';
  profile: string | null;
  signed: SignedManifest;
}

const readInfo = storedJsonReader(BaselineInfo);

function infoOf(text: string, where: string): BaselineInfo {
  const read = readInfo(text);
  if ('error' in read) throw new EdgefleetError('STORAGE_ERROR', `baseline info of ${where} ${read.error}`);
  return read.value;
}

export function createBaselineRepo(db: Db) {
  const upsertBaseline = db.prepare(`
    INSERT INTO model_baselines (model, version, source, samples, sha256, size, info, created_at) VALUES (@model, @version, @source, @samples, @sha256, @size, @info, @createdAt)
    ON CONFLICT (model, version) DO UPDATE SET source = excluded.source, samples = excluded.samples, sha256 = excluded.sha256, size = excluded.size, info = excluded.info, created_at = excluded.created_at`);
  const oneBaseline = db.prepare('SELECT info FROM model_baselines WHERE model = ? AND version = ?').pluck();
  const allBaselines = db.prepare('SELECT model, version, info FROM model_baselines ORDER BY model, version');
  const upsertReference = db.prepare(`
    INSERT INTO model_references (model, version, sha256, samples, uploaded_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (model, version) DO UPDATE SET sha256 = excluded.sha256, samples = excluded.samples, uploaded_at = excluded.uploaded_at`);
  const oneReference = db.prepare('SELECT sha256, samples, uploaded_at AS uploadedAt FROM model_references WHERE model = ? AND version = ?');
  const versionManifest = db.prepare('SELECT manifest FROM model_versions WHERE model = ? AND version = ?').pluck();
  const variantManifests = db.prepare("SELECT profile, manifest FROM model_variants WHERE model = ? AND version = ? AND state = 'accepted' AND manifest IS NOT NULL ORDER BY rowid");
  const setVersionManifest = db.prepare('UPDATE model_versions SET manifest = ? WHERE model = ? AND version = ?');
  const setVariantManifest = db.prepare('UPDATE model_variants SET manifest = ? WHERE model = ? AND version = ? AND profile = ?');
  // A baseline or reference file stays while a row names it, or a manifest a device was given (desired, rollouts) still does.
  const shaUsed = db.prepare(`
    SELECT (SELECT count(*) FROM model_baselines WHERE sha256 = ?) + (SELECT count(*) FROM model_references WHERE sha256 = ?)
         + (SELECT count(*) FROM desired WHERE payload LIKE ?) + (SELECT count(*) FROM rollout_manifests WHERE manifest LIKE ?)`).pluck();

  return {
    transaction<T>(fn: () => T): T {
      return db.transaction(fn)();
    },
    saveBaseline(info: BaselineInfo): void {
      upsertBaseline.run({ ...info, info: JSON.stringify(info) });
    },
    baseline(model: string, version: string): BaselineInfo | undefined {
      const text = oneBaseline.get(model, version) as string | undefined;
      return text === undefined ? undefined : infoOf(text, `${model}@${version}`);
    },
    baselines(): BaselineInfo[] {
      return (allBaselines.all() as Array<{ model: string; version: string; info: string }>).map((r) => infoOf(r.info, `${r.model}@${r.version}`));
    },
    saveReference(model: string, version: string, row: ReferenceRow): void {
      upsertReference.run(model, version, row.sha256, row.samples, row.uploadedAt);
    },
    reference(model: string, version: string): ReferenceRow | undefined {
      return oneReference.get(model, version) as ReferenceRow | undefined;
    },
    /** The version's own manifest and its accepted variants' manifests. */
    manifests(model: string, version: string): StoredManifest[] {
      const out: StoredManifest[] = [];
      const own = versionManifest.get(model, version) as string | undefined;
      if (own) out.push({ table: 'model_versions', profile: null, signed: readStoredManifest(own, `manifest of ${model}@${version}`) });
      for (const r of variantManifests.all(model, version) as Array<{ profile: string; manifest: string }>) {
        out.push({ table: 'model_variants', profile: r.profile, signed: readStoredManifest(r.manifest, `manifest of variant ${model}@${version}/${r.profile}`) });
      }
      return out;
    },
    saveManifest(model: string, version: string, at: Pick<StoredManifest, 'table' | 'profile'>, signed: SignedManifest): void {
      const text = JSON.stringify(signed);
      if (at.table === 'model_versions') setVersionManifest.run(text, model, version);
      else setVariantManifest.run(text, model, version, at.profile);
    },
    isReferenced(sha256: string): boolean {
      return (shaUsed.get(sha256, sha256, `%${sha256}%`, `%${sha256}%`) as number) > 0;
    },
  };
}
export type BaselineRepo = ReturnType<typeof createBaselineRepo>;
