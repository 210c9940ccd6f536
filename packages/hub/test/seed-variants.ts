import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signManifest, type ModelVersion, type Profile, type SignedManifest, type VariantEvaluation } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import Database from 'better-sqlite3';
import { createVariantRepo } from '../src/models/variant-repo.js';
import type { TestHub } from './hub-harness.js';

function evaluation(latencyRatio: number): VariantEvaluation {
  return {
    samples: 64,
    data: 'generated',
    agreement: 1,
    accuracy: null,
    fp32Accuracy: null,
    maxAbsError: 0.001,
    meanAbsError: 0.0001,
    relativeError: 0.001,
    sizeRatio: 0.3,
    transferRatio: 0.3,
    latencyMs: latencyRatio,
    fp32LatencyMs: 1,
    latencyRatio,
    quantizedWeightShare: 0.99,
    notes: [],
  };
}

/**
 * Writes accepted variants of a version as a finished build would: the file in the artifact store,
 * a manifest signed with the hub's key, the row through the variant repo (on a second connection).
 * Each variant's bytes are another small model, so every digest differs.
 */
export function seedVariants(t: TestHub, fp32: ModelVersion, variants: Array<{ profile: Profile; latencyRatio: number }>): Record<string, SignedManifest> {
  const db = new Database(join(t.dataDir, 'hub.db'));
  const privateKeyPem = readFileSync(join(t.dataDir, 'signing-key.pem'), 'utf8');
  const repo = createVariantRepo(db);
  const now = new Date().toISOString();
  const out: Record<string, SignedManifest> = {};
  try {
    variants.forEach(({ profile, latencyRatio }, i) => {
      const bytes = buildMlp({ inputSize: 4, hidden: [5 + i], outputSize: 2 });
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      writeFileSync(join(t.dataDir, 'artifacts', sha256), bytes);
      const manifest = signManifest({ ...fp32.manifest.manifest, profile, sha256, size: bytes.byteLength }, privateKeyPem);
      out[profile] = manifest;
      repo.upsert({ model: fp32.name, version: fp32.version, profile, state: 'accepted', reason: null, sha256, size: bytes.byteLength, transfer: null, evaluation: evaluation(latencyRatio), manifest, createdAt: now, updatedAt: now });
    });
  } finally {
    db.close();
  }
  return out;
}
