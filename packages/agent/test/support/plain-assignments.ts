import type { DesiredMessage, ModelAssignment } from '@edgefleet/shared';

/**
 * Unsigned assignments for the pure deployment tests (reconcile, retry policy), which look only at
 * names, versions, digests and rollouts: no model file, signature or golden check behind them.
 */

/** A 64-character digest made of one repeated character, so a test can tell its digests apart. */
export const sha = (c: string): string => c.repeat(64);

export function plainAssignment(model: string, version: string, digest: string, rolloutId?: string): ModelAssignment {
  return {
    ...(rolloutId ? { rolloutId } : {}),
    manifest: {
      signature: 'sig',
      manifest: {
        v: 1,
        model,
        version,
        profile: 'fp32',
        sha256: digest,
        size: 10,
        inputs: [],
        outputs: [],
        golden: { inputs: [], outputs: [], tolerance: { atol: 1e-4 } },
        createdAt: '2026-01-01T00:00:00Z',
      },
    },
  };
}

export const desired = (version: number, ...models: ModelAssignment[]): DesiredMessage => ({ version, models });
