import type { DesiredMessage, ModelAssignment } from '@edgefleet/shared';

/** Pure edits of a device's desired document: each bumps the version; other models are kept. */

/** This model's assignment replaced (or added). */
export function nextDesired(current: DesiredMessage | undefined, assignment: ModelAssignment): DesiredMessage {
  const name = assignment.manifest.manifest.model;
  const others = (current?.models ?? []).filter((m) => m.manifest.manifest.model !== name);
  return { version: (current?.version ?? 0) + 1, models: [...others, assignment] };
}

/** This model removed: the device uninstalls it (a rollback of a first install). */
export function withoutModel(current: DesiredMessage | undefined, model: string): DesiredMessage {
  return { version: (current?.version ?? 0) + 1, models: (current?.models ?? []).filter((m) => m.manifest.manifest.model !== model) };
}

/** The assignment of a model in a desired document, if any. */
export function assignmentOf(doc: DesiredMessage | undefined, model: string): ModelAssignment | undefined {
  return doc?.models.find((m) => m.manifest.manifest.model === model);
}
