import type { DeploymentPhase, DesiredMessage, ModelAssignment, RolloutDeviceState } from '@edgefleet/shared';

/** Pure rollout logic: per-device progress and the rollout's overall state. No I/O here. */
export type RolloutState = 'in-progress' | 'succeeded' | 'failed';

const RANK: Record<RolloutDeviceState, number> = {
  pending: 0,
  downloading: 1,
  verifying: 2,
  loading: 3,
  'health-check': 4,
  active: 5,
  failed: 5,
  removed: 5,
};

export function isTerminal(state: RolloutDeviceState): boolean {
  return state === 'active' || state === 'failed' || state === 'removed';
}

/**
 * A device's next state given a reported phase: progress only moves forward (replayed or
 * reordered events cannot move it back); finished rows stay finished — a late `active` for a row
 * that failed or was superseded by a newer rollout must not reopen it.
 */
export function nextDeviceState(current: RolloutDeviceState, phase: DeploymentPhase): RolloutDeviceState {
  if (phase === 'removed' || isTerminal(current)) return current;
  if (phase === 'active' || phase === 'failed') return phase;
  return RANK[phase] >= RANK[current] ? phase : current;
}

/** succeeded when every device is active; failed when all are done and any failed; otherwise in progress. */
export function rolloutState(deviceStates: readonly RolloutDeviceState[]): RolloutState {
  if (deviceStates.every((s) => s === 'active')) return 'succeeded';
  if (deviceStates.every(isTerminal)) return 'failed';
  return 'in-progress';
}

export function countStates(deviceStates: readonly RolloutDeviceState[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const s of deviceStates) counts[s] = (counts[s] ?? 0) + 1;
  return counts;
}

/** The next desired document: version + 1, this model's assignment replaced, the others kept. */
export function nextDesired(current: DesiredMessage | undefined, assignment: ModelAssignment): DesiredMessage {
  const name = assignment.manifest.manifest.model;
  const others = (current?.models ?? []).filter((m) => m.manifest.manifest.model !== name);
  return { version: (current?.version ?? 0) + 1, models: [...others, assignment] };
}
