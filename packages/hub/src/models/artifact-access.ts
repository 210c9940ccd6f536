import type { DesiredMessage, InstalledModel, Manifest } from '@edgefleet/shared';

/** Every artifact a manifest needs: the model file, its compressed transfer copy, its golden file, its drift baseline. */
export function artifactsOfManifest(m: Manifest): string[] {
  return [m.sha256, ...(m.transfer ? [m.transfer.sha256] : []), ...(m.golden.ref ? [m.golden.ref.sha256] : []), ...(m.drift ? [m.drift.sha256] : [])];
}

export interface ArtifactAccessSources {
  desired(deviceId: string): DesiredMessage | undefined;
  /** The models the device last reported installed (its active version and the one kept before it). */
  reportedModels(deviceId: string): readonly InstalledModel[];
  /**
   * The manifest of the variant of a model version whose file has this digest (fp32 or a built
   * variant), only when a rollout assigned that exact variant to this device (or returned it there).
   */
  assignedManifest(deviceId: string, model: string, version: string, sha256: string): Manifest | undefined;
  /** Artifacts of the device's benchmark requests that have not expired (none when absent). */
  benchmarkArtifacts?(deviceId: string): readonly string[];
}

/**
 * Which artifacts a device may download: those of its current desired manifests, those of the
 * variants it reports installed that the hub itself once gave it (the previous version a rollback
 * goes back to, in the variant a rollout gave it), and the candidates of its benchmark requests while
 * they wait for its answer. A reported model alone grants nothing: `reported` is the device's word,
 * and a digest learnt elsewhere (another variant of a version it was given) must not open a file the
 * hub never gave this device.
 */
export function mayDownload(src: ArtifactAccessSources, deviceId: string, sha256: string): boolean {
  for (const a of src.desired(deviceId)?.models ?? []) {
    if (artifactsOfManifest(a.manifest.manifest).includes(sha256)) return true;
  }
  for (const m of src.reportedModels(deviceId)) {
    const manifest = src.assignedManifest(deviceId, m.name, m.version, m.sha256);
    if (manifest && manifest.sha256 === m.sha256 && artifactsOfManifest(manifest).includes(sha256)) return true;
  }
  return src.benchmarkArtifacts?.(deviceId).includes(sha256) ?? false;
}
