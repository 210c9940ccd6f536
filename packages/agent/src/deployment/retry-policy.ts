import type { DesiredMessage, ModelAssignment } from '@edgefleet/shared';
import type { FailureRow } from '../store/agent-store.js';
import { blockKey } from './reconcile.js';

// When a failed assignment is tried again. Pure.

/** The assignment a document makes for `name`: the first one, as reconcile takes it. */
function assignmentOf(desired: DesiredMessage, name: string): ModelAssignment | undefined {
  return desired.models.find((m) => m.manifest.manifest.model === name);
}

/**
 * Whether `failure` keeps its assignment from being tried under `desired` at time `now`.
 * - Under the document it failed under: a non-retryable failure always, a retryable one until due.
 * - A non-retryable failure inside a rollout (UNHEALTHY, SHADOW_DISAGREEMENT, INVALID_MODEL) also
 *   under any later document that still makes the same assignment — same digest, same rollout:
 *   the desired version also moves when another model's rollout writes the document, and that
 *   must not reinstall (and, with a health window, roll back again) a version this device judged
 *   bad. Another rollout of the same digest is an operator's deliberate retry and is tried.
 * - Outside a rollout there is nothing to tell a retry from a bump, so any new document tries again.
 */
export function blocks(failure: FailureRow, desired: DesiredMessage, now: number, dueAt: number): boolean {
  if (failure.desiredVersion === desired.version) return !failure.retryable || now < dueAt;
  if (failure.retryable || failure.rolloutId === undefined) return false;
  const assignment = assignmentOf(desired, failure.name);
  return assignment?.manifest.manifest.sha256 === failure.sha256 && assignment.rolloutId === failure.rolloutId;
}

/** `${name}@${sha256}` of the assignments of `desired` not to try now. */
export function blockedAssignments(failures: readonly FailureRow[], desired: DesiredMessage, now: number, dueAt: (f: FailureRow) => number): Set<string> {
  return new Set(failures.filter((f) => blocks(f, desired, now, dueAt(f))).map((f) => blockKey(f.name, f.sha256)));
}
