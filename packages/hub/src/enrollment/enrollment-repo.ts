import type { Labels } from '@edgefleet/shared';
import type { Db } from '../store/database.js';

/** SQL for single-use, expiring enrollment tokens (stored as SHA-256 digests). */
export function createEnrollmentRepo(db: Db) {
  const insert = db.prepare('INSERT INTO enrollment_tokens (token_sha256, labels, created_at, expires_at) VALUES (?, ?, ?, ?)');
  const claim = db.prepare(
    'UPDATE enrollment_tokens SET used_at = ?, used_by = ? WHERE token_sha256 = ? AND used_at IS NULL AND expires_at > ? RETURNING labels',
  );
  const purge = db.prepare('DELETE FROM enrollment_tokens WHERE expires_at < ?');
  return {
    insert(tokenSha256: string, labels: Labels, createdAt: Date, expiresAtMs: number): void {
      insert.run(tokenSha256, JSON.stringify(labels), createdAt.toISOString(), expiresAtMs);
    },
    /** Marks the token used by `deviceId` if it is unused and unexpired; returns its labels, or undefined. */
    claim(tokenSha256: string, deviceId: string, nowMs: number): Labels | undefined {
      const row = claim.get(new Date(nowMs).toISOString(), deviceId, tokenSha256, nowMs) as { labels: string } | undefined;
      return row && (JSON.parse(row.labels) as Labels);
    },
    purgeExpired(beforeMs: number): number {
      return purge.run(beforeMs).changes;
    },
  };
}
export type EnrollmentRepo = ReturnType<typeof createEnrollmentRepo>;
