import { EdgefleetError, type WaveSize, type WaveSpec } from '@edgefleet/shared';

/** One wave of "100%": a one-shot deploy is a rollout with a single wave. */
export const DEFAULT_WAVES: readonly WaveSpec[] = [{ size: '100%' }];

/** How many of `total` devices a wave size reaches: a count, or a percentage rounded up. */
export function sizeOf(size: WaveSize, total: number): number {
  if (typeof size === 'number') return Math.min(size, total);
  const percent = Number(size.slice(0, -1));
  // Shares like 10% of 30 are 3.0000000000000004 in floating point: that is 3 devices, not 4.
  return Math.min(total, Math.ceil((total * percent) / 100 - 1e-9));
}

/**
 * Cumulative device counts reached by the end of each wave. A size smaller than an earlier one
 * leaves its wave empty; the last must reach the whole target, or the request is refused (a rollout
 * that can never finish is a mistake the operator should hear about at once).
 */
export function cumulativeSizes(specs: readonly WaveSpec[], total: number): number[] {
  let reached = 0;
  const sizes = specs.map((spec) => (reached = Math.max(reached, sizeOf(spec.size, total))));
  const last = sizes[sizes.length - 1] ?? 0;
  if (last < total) {
    throw new EdgefleetError(
      'BAD_REQUEST',
      `the last wave reaches ${last} of the ${total} target devices: it must cover the whole target (e.g. "100%")`,
    );
  }
  return sizes;
}

export interface TargetDevice {
  id: string;
  online: boolean;
}

export interface WaveMember {
  deviceId: string;
  wave: number;
  /** Order of assignment within the rollout. */
  position: number;
}

/**
 * Wave membership: online devices first (they can prove the version soonest), then by id, cut at
 * the cumulative sizes.
 */
export function planWaves(targets: readonly TargetDevice[], specs: readonly WaveSpec[]): WaveMember[] {
  const ordered = [...targets].sort((a, b) => Number(b.online) - Number(a.online) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const sizes = cumulativeSizes(specs, ordered.length);
  let wave = 0;
  return ordered.map((d, position) => {
    while (position >= sizes[wave]!) wave++;
    return { deviceId: d.id, wave, position };
  });
}
