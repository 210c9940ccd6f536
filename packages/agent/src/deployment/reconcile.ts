import type { DesiredMessage, ModelAssignment } from '@edgefleet/shared';

/** What the device has, as far as reconciling is concerned. */
export interface CurrentModel {
  name: string;
  version: string;
  sha256: string;
  active: boolean;
}

export type Step =
  | { kind: 'install'; name: string; version: string; sha256: string; assignment: ModelAssignment }
  | { kind: 'remove'; name: string; version: string; sha256: string };

export interface ReconcileInput {
  current: readonly CurrentModel[];
  desired: DesiredMessage;
  /** `${name}@${sha256}` of assignments not to try again now (they failed and are not due for a retry). */
  blocked: ReadonlySet<string>;
}

export interface ReconcilePlan {
  steps: Step[];
  /** Assignments left alone because they failed before and are not due for a retry. */
  skipped: Array<{ name: string; version: string; sha256: string }>;
  /** Assignments dropped because an earlier one in the document had the same model name. */
  duplicates: string[];
}

export function blockKey(name: string, sha256: string): string {
  return `${name}@${sha256}`;
}

/**
 * Pure: the steps that take the device from `current` to `desired`. Removals come first (they free
 * memory and disk on small devices), then installs in document order. A model already active with
 * the desired digest needs nothing; a model active but absent from the document is removed.
 */
export function reconcile(input: ReconcileInput): ReconcilePlan {
  const active = new Map(input.current.filter((m) => m.active).map((m) => [m.name, m]));
  const wanted = new Map<string, ModelAssignment>();
  const duplicates: string[] = [];
  for (const assignment of input.desired.models) {
    const name = assignment.manifest.manifest.model;
    if (wanted.has(name)) duplicates.push(name);
    else wanted.set(name, assignment);
  }

  const steps: Step[] = [];
  const skipped: ReconcilePlan['skipped'] = [];
  for (const [name, model] of active) {
    if (!wanted.has(name)) steps.push({ kind: 'remove', name, version: model.version, sha256: model.sha256 });
  }
  for (const [name, assignment] of wanted) {
    const { version, sha256 } = assignment.manifest.manifest;
    const now = active.get(name);
    if (now && now.sha256 === sha256 && now.version === version) continue;
    if (input.blocked.has(blockKey(name, sha256))) {
      skipped.push({ name, version, sha256 });
      continue;
    }
    steps.push({ kind: 'install', name, version, sha256, assignment });
  }
  return { steps, skipped, duplicates };
}
