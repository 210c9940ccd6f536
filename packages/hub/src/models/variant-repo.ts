import {
  AccuracyBudget,
  CalibrationSummary,
  EdgefleetError,
  Transfer,
  VariantEvaluation,
  type Profile,
  type SignedManifest,
  type Variant,
  type VariantBuild,
  type VariantDetail,
} from '@edgefleet/shared';
import { Type } from 'typebox';
import { readStoredManifest } from '../rollouts/rollout-rows.js';
import type { Db } from '../store/database.js';
import { storedJsonReader } from '../store/stored-json.js';

interface VariantRow {
  model: string;
  version: string;
  profile: string;
  state: string;
  reason: string | null;
  sha256: string | null;
  size: number | null;
  transfer: string | null;
  evaluation: string | null;
  manifest?: string | null;
  created_at: string;
  updated_at: string;
}

interface BuildRow {
  model: string;
  version: string;
  state: string;
  request: string;
  progress: string;
  error: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
}

/** The parts of a build stored as the `request` JSON. */
type BuildRequestPart = Pick<VariantBuild, 'profiles' | 'budget' | 'pruneSparsity' | 'calibrationMethod'>;

const readTransfer = storedJsonReader(Transfer);
const readEvaluation = storedJsonReader(VariantEvaluation);
const readBudget = storedJsonReader(AccuracyBudget);
const readSummary = storedJsonReader(CalibrationSummary);
const readProgress = storedJsonReader(Type.Object({ done: Type.Integer(), total: Type.Integer(), profile: Type.Union([Type.String(), Type.Null()]), step: Type.Union([Type.String(), Type.Null()]) }));
const readRequest = storedJsonReader(Type.Object({ profiles: Type.Array(Type.String()), budget: AccuracyBudget, pruneSparsity: Type.Number(), calibrationMethod: Type.String() }));

/** Stored JSON that does not read is a damaged row: named, never half-used. */
function parsed<T>(result: { value: T } | { error: string }, where: string): T {
  if ('value' in result) return result.value;
  throw new EdgefleetError('STORAGE_ERROR', `${where} ${result.error}`);
}

function toVariant(r: VariantRow): Variant {
  const where = `variant ${r.model}@${r.version}/${r.profile}`;
  return {
    model: r.model,
    version: r.version,
    profile: r.profile as Profile,
    state: r.state as Variant['state'],
    reason: r.reason,
    sha256: r.sha256,
    size: r.size,
    transfer: r.transfer === null ? null : parsed(readTransfer(r.transfer), `${where} transfer`),
    evaluation: r.evaluation === null ? null : parsed(readEvaluation(r.evaluation), `${where} evaluation`),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toDetail(r: VariantRow): VariantDetail {
  const manifest: SignedManifest | null = r.manifest ? readStoredManifest(r.manifest, `variant ${r.model}@${r.version}/${r.profile} manifest`) : null;
  return { ...toVariant(r), manifest };
}

function toBuild(r: BuildRow): VariantBuild {
  const where = `variant build ${r.model}@${r.version}`;
  const request = parsed(readRequest(r.request), `${where} request`) as BuildRequestPart;
  return {
    model: r.model,
    version: r.version,
    state: r.state as VariantBuild['state'],
    ...request,
    progress: parsed(readProgress(r.progress), `${where} progress`),
    error: r.error,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
  };
}

const LIST_COLUMNS = 'model, version, profile, state, reason, sha256, size, transfer, evaluation, created_at, updated_at';

/**
 * SQL for variants, variant builds, calibration sets and accuracy budgets. fp32 is a variant like the
 * others (written at upload), so planning and rollouts read one table.
 */
export function createVariantRepo(db: Db) {
  const upsertVariant = db.prepare(`
    INSERT INTO model_variants (model, version, profile, state, reason, sha256, size, transfer, evaluation, manifest, created_at, updated_at)
    VALUES (@model, @version, @profile, @state, @reason, @sha256, @size, @transfer, @evaluation, @manifest, @createdAt, @updatedAt)
    ON CONFLICT (model, version, profile) DO UPDATE SET state = excluded.state, reason = excluded.reason, sha256 = excluded.sha256,
      size = excluded.size, transfer = excluded.transfer, evaluation = excluded.evaluation, manifest = excluded.manifest, updated_at = excluded.updated_at`);
  const oneVariant = db.prepare('SELECT * FROM model_variants WHERE model = ? AND version = ? AND profile = ?');
  const listVariants = db.prepare(`SELECT ${LIST_COLUMNS} FROM model_variants WHERE model = ? AND version = ? ORDER BY rowid`);
  const acceptedVariants = db.prepare("SELECT * FROM model_variants WHERE model = ? AND version = ? AND state = 'accepted' ORDER BY rowid");
  const variantBySha = db.prepare('SELECT * FROM model_variants WHERE sha256 = ? ORDER BY rowid LIMIT 1');
  const upsertBuild = db.prepare(`
    INSERT INTO variant_builds (model, version, state, request, progress, error, created_at, started_at, ended_at)
    VALUES (@model, @version, @state, @request, @progress, @error, @createdAt, @startedAt, @endedAt)
    ON CONFLICT (model, version) DO UPDATE SET state = excluded.state, request = excluded.request, progress = excluded.progress,
      error = excluded.error, created_at = excluded.created_at, started_at = excluded.started_at, ended_at = excluded.ended_at`);
  const oneBuild = db.prepare('SELECT * FROM variant_builds WHERE model = ? AND version = ?');
  const buildsIn = db.prepare('SELECT * FROM variant_builds WHERE state IN (?, ?) ORDER BY created_at, rowid');
  const failBuild = db.prepare("UPDATE variant_builds SET state = 'failed', error = ?, ended_at = ? WHERE model = ? AND version = ?");
  const setBudget = db.prepare('UPDATE model_versions SET budget = ? WHERE model = ? AND version = ?');
  const getBudget = db.prepare('SELECT budget FROM model_versions WHERE model = ? AND version = ?').pluck();
  const upsertCalibration = db.prepare(`
    INSERT INTO model_calibrations (model, version, sha256, summary, uploaded_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (model, version) DO UPDATE SET sha256 = excluded.sha256, summary = excluded.summary, uploaded_at = excluded.uploaded_at`);
  const oneCalibration = db.prepare('SELECT summary FROM model_calibrations WHERE model = ? AND version = ?').pluck();
  const shaUsed = db.prepare(`
    SELECT (SELECT count(*) FROM model_variants WHERE sha256 = ? OR transfer LIKE ? OR manifest LIKE ?)
         + (SELECT count(*) FROM model_calibrations WHERE sha256 = ?)`).pluck();

  return {
    /** Inserts or replaces the variant of (model, version, profile); createdAt of an existing row is kept. */
    upsert(v: VariantDetail): void {
      upsertVariant.run({
        ...v,
        transfer: v.transfer === null ? null : JSON.stringify(v.transfer),
        evaluation: v.evaluation === null ? null : JSON.stringify(v.evaluation),
        manifest: v.manifest === null ? null : JSON.stringify(v.manifest),
      });
    },
    get(model: string, version: string, profile: Profile): VariantDetail | undefined {
      const row = oneVariant.get(model, version, profile) as VariantRow | undefined;
      return row && toDetail(row);
    },
    /** Every variant of a version, without manifests, in the order they were first written (fp32 first). */
    list(model: string, version: string): Variant[] {
      return (listVariants.all(model, version) as VariantRow[]).map(toVariant);
    },
    /** Accepted variants of a version with their signed manifests (fp32 included): what planning chooses from. */
    accepted(model: string, version: string): VariantDetail[] {
      return (acceptedVariants.all(model, version) as VariantRow[]).map(toDetail);
    },
    /** The variant whose ONNX file has this digest. */
    bySha(sha256: string): VariantDetail | undefined {
      const row = variantBySha.get(sha256) as VariantRow | undefined;
      return row && toDetail(row);
    },
    saveBuild(b: VariantBuild): void {
      const { profiles, budget, pruneSparsity, calibrationMethod } = b;
      upsertBuild.run({
        model: b.model,
        version: b.version,
        state: b.state,
        request: JSON.stringify({ profiles, budget, pruneSparsity, calibrationMethod }),
        progress: JSON.stringify(b.progress),
        error: b.error,
        createdAt: b.createdAt,
        startedAt: b.startedAt,
        endedAt: b.endedAt,
      });
    },
    build(model: string, version: string): VariantBuild | undefined {
      const row = oneBuild.get(model, version) as BuildRow | undefined;
      return row && toBuild(row);
    },
    /** Builds queued or running (a hub that stopped mid-build picks them up again at start), oldest first. */
    unfinishedBuilds(): VariantBuild[] {
      return (buildsIn.all('queued', 'running') as BuildRow[]).map(toBuild);
    },
    /**
     * Marks every queued or running build whose row does not read as failed, naming the problem;
     * returns them. Only state, error and end time are written: the damaged JSON stays to look at.
     */
    failDamagedBuilds(at: string): Array<{ model: string; version: string; error: string }> {
      const damaged: Array<{ model: string; version: string; error: string }> = [];
      for (const row of buildsIn.all('queued', 'running') as BuildRow[]) {
        try {
          toBuild(row);
        } catch (err) {
          const error = `the stored build is damaged: ${(err as Error).message}`;
          failBuild.run(error, at, row.model, row.version);
          damaged.push({ model: row.model, version: row.version, error });
        }
      }
      return damaged;
    },
    /** Marks a build failed without rewriting the rest of its row. */
    markBuildFailed(model: string, version: string, error: string, at: string): void {
      failBuild.run(error, at, model, version);
    },
    /** The version's accuracy budget as set at upload or by its latest build request; {} when none was given. */
    budget(model: string, version: string): AccuracyBudget {
      const text = getBudget.get(model, version) as string | null | undefined;
      return text ? parsed(readBudget(text), `budget of ${model}@${version}`) : {};
    },
    setBudget(model: string, version: string, budget: AccuracyBudget): void {
      setBudget.run(JSON.stringify(budget), model, version);
    },
    saveCalibration(model: string, version: string, summary: CalibrationSummary): void {
      upsertCalibration.run(model, version, summary.sha256, JSON.stringify(summary), summary.uploadedAt);
    },
    calibration(model: string, version: string): CalibrationSummary | undefined {
      const text = oneCalibration.get(model, version) as string | undefined;
      return text === undefined ? undefined : parsed(readSummary(text), `calibration of ${model}@${version}`);
    },
    /** True when a variant (file, transfer copy, golden file) or a calibration set uses this artifact. */
    isReferenced(sha256: string): boolean {
      return (shaUsed.get(sha256, `%${sha256}%`, `%${sha256}%`, sha256) as number) > 0;
    },
  };
}
export type VariantRepo = ReturnType<typeof createVariantRepo>;
