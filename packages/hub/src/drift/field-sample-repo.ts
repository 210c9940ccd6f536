import type { FieldSampleInfo } from '@edgefleet/shared';
import type { Db } from '../store/database.js';

interface FieldSampleRow {
  id: number;
  device_id: string;
  model: string;
  version: string;
  reason: 'random' | 'hard';
  margin: number | null;
  entropy: number | null;
  sha256: string;
  size: number;
  content_type: string;
  header_length: number | null;
  taken_at: number;
  received_at: number;
}

/** What a stored sample's body needs to be replayed as it came: its content type and binary header length. */
export interface StoredFieldSample {
  info: FieldSampleInfo;
  contentType: string;
  headerLength: number | null;
}

export interface NewFieldSample extends Omit<FieldSampleInfo, 'id' | 'takenAt' | 'receivedAt'> {
  contentType: string;
  headerLength: number | null;
  takenAtMs: number;
  receivedAtMs: number;
}

function toStored(r: FieldSampleRow): StoredFieldSample {
  return {
    info: {
      id: r.id,
      deviceId: r.device_id,
      model: r.model,
      version: r.version,
      reason: r.reason,
      margin: r.margin,
      entropy: r.entropy,
      size: r.size,
      sha256: r.sha256,
      takenAt: new Date(r.taken_at).toISOString(),
      receivedAt: new Date(r.received_at).toISOString(),
    },
    contentType: r.content_type,
    headerLength: r.header_length,
  };
}

/** SQL for field samples (migration 006's `field_samples`; times are epoch milliseconds). */
export function createFieldSampleRepo(db: Db) {
  const insert = db.prepare(
    `INSERT INTO field_samples (device_id, model, version, reason, margin, entropy, sha256, size, content_type, header_length, taken_at, received_at)
     VALUES (@deviceId, @model, @version, @reason, @margin, @entropy, @sha256, @size, @contentType, @headerLength, @takenAtMs, @receivedAtMs)`,
  );
  const beyondCap = db.prepare<[string, string, number], { id: number; sha256: string }>(
    'SELECT id, sha256 FROM field_samples WHERE model = ? AND version = ? ORDER BY id DESC LIMIT -1 OFFSET ?',
  );
  const remove = db.prepare<[number]>('DELETE FROM field_samples WHERE id = ?');
  const uses = db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM field_samples WHERE sha256 = ?');
  const one = db.prepare<[number], FieldSampleRow>('SELECT * FROM field_samples WHERE id = ?');
  const addAndPrune = db.transaction((s: NewFieldSample, keep: number): { stored: StoredFieldSample; unreferenced: string[] } => {
      const id = Number(insert.run({ ...s }).lastInsertRowid);
      const dropped = beyondCap.all(s.model, s.version, keep);
      for (const d of dropped) remove.run(d.id);
      const unreferenced = [...new Set(dropped.map((d) => d.sha256))].filter((sha) => uses.get(sha)!.n === 0);
      return { stored: toStored(one.get(id)!), unreferenced };
  });
  return {
    /**
     * Adds a sample and removes the oldest of its version beyond `keep`, in one transaction. Returns
     * the new row and the digests no row references any more (their files can go).
     */
    add(s: NewFieldSample, keep: number): { stored: StoredFieldSample; unreferenced: string[] } {
      return addAndPrune(s, keep);
    },
    get(id: number): StoredFieldSample | undefined {
      const row = one.get(id);
      return row ? toStored(row) : undefined;
    },
    /** Newest first. */
    list(model: string, version: string, reason: 'random' | 'hard' | undefined, limit: number): FieldSampleInfo[] {
      const rows = db
        .prepare<unknown[], FieldSampleRow>(
          `SELECT * FROM field_samples WHERE model = ? AND version = ?${reason ? ' AND reason = ?' : ''} ORDER BY id DESC LIMIT ?`,
        )
        .all(model, version, ...(reason ? [reason] : []), limit);
      return rows.map((r) => toStored(r).info);
    },
  };
}
export type FieldSampleRepo = ReturnType<typeof createFieldSampleRepo>;
