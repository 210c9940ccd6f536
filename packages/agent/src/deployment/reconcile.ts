import type { DesiredMessage, ModelAssignment } from '@edgefleet/shared';

/** What the device has on disk, as far as reconciling is concerned (active or kept as a previous version). */
export interface CurrentModel {
  name: string;
  version: string;
  sha256: string;
  active: boolean;
}

/**
 * A version loaded in memory but not served: `staged` was prepared (verified, loaded, checked) and
 * waits for the go; `standby` was replaced by a switch and is kept for a quick way back.
 */
export interface LoadedCandidate {
  name: string;
  version: string;
  sha256: string;
  role: 'staged' | 'standby';
  /** Staged only: false when no `ready` was reported for it yet (its switch was interrupted). Absent: reported. */
  readyReported?: boolean;
}

/**
 * Where an install gets its model from: `staged` and `standby` are already loaded (a switch),
 * `disk` has the verified file installed (a load, no download), `download` fetches it.
 */
export type InstallSource = 'staged' | 'standby' | 'disk' | 'download';

export type Step =
  | {
      kind: 'install';
      name: string;
      version: string;
      sha256: string;
      assignment: ModelAssignment;
      /** false: prepare only (stage and report `ready`), keep serving the current version. */
      activate: boolean;
      source: InstallSource;
    }
  | { kind: 'remove'; name: string; version: string; sha256: string }
  /** A staged candidate the document no longer asks for: close it. */
  | { kind: 'discard'; name: string; version: string; sha256: string };

export interface ReconcileInput {
  current: readonly CurrentModel[];
  desired: DesiredMessage;
  /** `${name}@${sha256}` of assignments not to try again now (they failed and are not due for a retry). */
  blocked: ReadonlySet<string>;
  /** Versions loaded but not active (absent: none). */
  loaded?: readonly LoadedCandidate[];
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

/** Absent `activate` means switch at once (the document predates prepare-only assignments). */
export function activates(assignment: ModelAssignment): boolean {
  return assignment.activate !== false;
}

function sourceOf(input: ReconcileInput, name: string, version: string, sha256: string): InstallSource {
  const loaded = input.loaded?.find((c) => c.name === name && c.sha256 === sha256);
  if (loaded) return loaded.role;
  const onDisk = input.current.some((m) => m.name === name && m.version === version && m.sha256 === sha256);
  return onDisk ? 'disk' : 'download';
}

/**
 * Pure: the steps that take the device from `current` to `desired`. Staged candidates nobody wants
 * any more are discarded first, then removals (they free memory and disk on small devices), then
 * installs in document order. A model already active with the desired digest needs nothing, nor
 * does a prepare-only assignment already staged and reported `ready`; a model active but absent from the document is removed.
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
  for (const c of input.loaded ?? []) {
    if (c.role !== 'staged') continue;
    const sha = wanted.get(c.name)?.manifest.manifest.sha256;
    if (sha !== c.sha256 || active.get(c.name)?.sha256 === c.sha256) steps.push({ kind: 'discard', name: c.name, version: c.version, sha256: c.sha256 });
  }
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
    const activate = activates(assignment);
    const source = sourceOf(input, name, version, sha256);
    // Already staged and announced: nothing to do. Staged but never announced: the step reports `ready`.
    const staged = input.loaded?.find((c) => c.role === 'staged' && c.name === name && c.sha256 === sha256);
    if (!activate && staged && staged.readyReported !== false) continue;
    steps.push({ kind: 'install', name, version, sha256, assignment, activate, source });
  }
  return { steps, skipped, duplicates };
}

export type InstallStep = Extract<Step, { kind: 'install' }>;
