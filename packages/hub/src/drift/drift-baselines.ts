import type { BaselineInfo, DriftBaseline } from '@edgefleet/shared';

/**
 * The versions' drift baselines as the rest of the hub reads them: ingest checks each summary
 * against its version's baseline, evaluation scores windows against it, the API shows its info.
 * Reads are served from memory (a baseline is loaded from its artifact once, then cached), because
 * ingest asks for every drift record it admits.
 */
export interface DriftBaselines {
  /** The version's baseline, or undefined when it has none (drift off for it). */
  get(model: string, version: string): DriftBaseline | undefined;
  info(model: string, version: string): BaselineInfo | undefined;
  /** Every version with a baseline. */
  list(): BaselineInfo[];
}
