import { EdgefleetError, type DesiredMessage, type InstalledModel, type ModelAssignment, type SignedManifest, type VersionRef } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { DeviceRepo } from '../devices/device-repo.js';
import type { ModelRepo } from '../models/model-repo.js';
import { assignmentOf, nextDesired, withoutModel } from './desired-doc.js';
import type { DesiredRepo } from './desired-repo.js';
import { activeVersionOf, onReported, type DeviceChange } from './device-transitions.js';
import type { RolloutRepo } from './rollout-repo.js';
import { withChange, type DeviceRow, type RolloutRecord } from './rollout-rows.js';

/** What one transaction changed, to publish and announce once it has committed. */
export interface Effects {
  /** The newest desired document per device written in the transaction. */
  docs: Map<string, DesiredMessage>;
  /** Rollouts whose rows or state changed, with the last device that moved. */
  touched: Map<string, { deviceId?: string; deviceState?: string }>;
  /** Rows that settled at once from the device's stored report (they can complete a wave: advance again). */
  settled: number;
}

export const newEffects = (): Effects => ({ docs: new Map(), touched: new Map(), settled: 0 });

/** The version a signed manifest describes. */
export const refOf = (m: SignedManifest): VersionRef => ({ model: m.manifest.model, version: m.manifest.version, profile: m.manifest.profile, sha256: m.manifest.sha256 });

/**
 * The writes a rollout makes for its devices: each desired document is written in the caller's
 * transaction together with the row change it belongs to (so a restart never assigns twice), and
 * collected in `Effects` to be published after the commit.
 */
export function createDeviceAssignments(deps: { rollouts: RolloutRepo; desired: DesiredRepo; devices: DeviceRepo; models: ModelRepo; log: Logger }) {
  const { rollouts, desired, devices, models, log } = deps;

  function writeDesired(eff: Effects, deviceId: string, doc: DesiredMessage): void {
    desired.put(deviceId, doc);
    devices.setDesiredVersion(deviceId, doc.version);
    eff.docs.set(deviceId, doc);
  }

  function save(eff: Effects, row: DeviceRow, change: DeviceChange, at: string): DeviceRow {
    const next = withChange(row, change);
    rollouts.saveDevice(next, at);
    eff.touched.set(row.rolloutId, { deviceId: row.deviceId, deviceState: next.state });
    return next;
  }

  /**
   * The signed manifest of the variant a device ran before: from its desired document, else from the
   * rollout that gave it that variant (its desired document may have moved on: a version superseded
   * before it was installed), else the registry's fp32 manifest of that version.
   */
  function manifestOf(deviceId: string, from: VersionRef, current: DesiredMessage | undefined): SignedManifest | null {
    const assigned = assignmentOf(current, from.model)?.manifest;
    if (assigned?.manifest.sha256 === from.sha256 && assigned.manifest.version === from.version) return assigned;
    const given = rollouts.manifestGivenTo(deviceId, from);
    if (given) return given;
    const registered = models.get(from.model, from.version)?.manifest;
    return registered?.manifest.sha256 === from.sha256 ? registered : null;
  }

  function assignmentFor(rec: RolloutRecord, row: DeviceRow, activate: boolean): ModelAssignment {
    const { settings } = rec.core;
    const manifest = row.toManifest ?? models.get(row.to.model, row.to.version)?.manifest;
    if (!manifest) {
      // Not the operator's request at fault (it was checked at creation): the stored row, or the registry it falls back on, lost the manifest.
      throw new EdgefleetError('INTERNAL', `rollout ${rec.core.id} has no manifest for device ${row.deviceId}'s version ${row.to.model}@${row.to.version}: neither its row nor the model registry holds one`);
    }
    return {
      rolloutId: rec.core.id,
      manifest,
      ...(settings.maintenanceWindow ? { activate } : {}),
      ...(settings.shadow ? { shadow: settings.shadow } : {}),
      ...(settings.healthWindow ? { healthWindow: settings.healthWindow } : {}),
      maxDeferSec: settings.maxDeferSec,
    };
  }

  const reportedModels = (deviceId: string): InstalledModel[] => devices.get(deviceId)?.models ?? [];

  /**
   * A device's settled state from its stored report, right after the hub wrote its desired document.
   * `reported`: the models the caller already read for this device (writing desired does not change them).
   */
  function settleFromReport(eff: Effects, row: DeviceRow, now: number, at: string, reported: readonly InstalledModel[] = reportedModels(row.deviceId)): void {
    const change = onReported(row, reported, now);
    if (!change) return;
    save(eff, row, change, at);
    eff.settled++;
  }

  /**
   * Writes the desired document that returns a device to `from` (the model removed when there was
   * none). Going back is a safety action: `maxDeferSec: 0` so a local update lock cannot hold it.
   */
  function writeFrom(eff: Effects, row: DeviceRow): 'written' | 'not-owner' | 'no-manifest' {
    const current = desired.get(row.deviceId);
    const owner = assignmentOf(current, row.to.model)?.rolloutId;
    // A newer rollout of this model owns the device now: its assignment is not ours to undo.
    if (owner !== undefined && owner !== row.rolloutId) return 'not-owner';
    if (!row.from) {
      writeDesired(eff, row.deviceId, withoutModel(current, row.to.model));
      return 'written';
    }
    const manifest = row.fromManifest ?? manifestOf(row.deviceId, row.from, current);
    if (!manifest) return 'no-manifest';
    writeDesired(eff, row.deviceId, nextDesired(current, { rolloutId: row.rolloutId, manifest, maxDeferSec: 0 }));
    return 'written';
  }

  return {
    save,
    /** Assigns one waiting device: desired written and the row `assigned` with its deadline, in the caller's transaction. */
    assign(eff: Effects, rec: RolloutRecord, row: DeviceRow, activate: boolean, now: number, at: string): void {
      const device = devices.get(row.deviceId);
      if (!device || device.revoked) {
        // It cannot fetch anything: assigned, it would hold a download slot until its deadline. It leaves the rollout.
        save(eff, row, { state: 'cancelled', error: 'the device was revoked before its turn: not assigned' }, at);
        eff.settled++;
        return;
      }
      const current = desired.get(row.deviceId);
      const models = device.models;
      const previous = assignmentOf(current, row.to.model)?.manifest;
      const from = activeVersionOf(models, row.to.model) ?? (previous ? refOf(previous) : null) ?? row.from;
      const fromManifest = from && from.sha256 !== row.to.sha256 ? manifestOf(row.deviceId, from, current) : null;
      writeDesired(eff, row.deviceId, nextDesired(current, assignmentFor(rec, row, activate)));
      const deadline = now + rec.core.settings.deviceTimeoutSec * 1000;
      rollouts.assign(row, { from, fromManifest, activate, assignedAt: now, deadline }, at);
      eff.touched.set(row.rolloutId, { deviceId: row.deviceId, deviceState: 'assigned' });
      // A device that already runs the version is done at once.
      settleFromReport(eff, { ...row, state: 'assigned', from, fromManifest, activate, assignedAt: now, deadline }, now, at, models);
    },
    /** The maintenance window opened (activate) or the device was prepared only: its assignment rewritten with the new flag. */
    setActivate(eff: Effects, rec: RolloutRecord, row: DeviceRow, activate: boolean, deadline: number | null, at: string): void {
      const current = desired.get(row.deviceId);
      if (assignmentOf(current, row.to.model)?.rolloutId !== row.rolloutId) return;
      writeDesired(eff, row.deviceId, nextDesired(current, assignmentFor(rec, row, activate)));
      rollouts.setActivate(row, activate, deadline, at);
    },
    /**
     * Rollback of one row: back to `from`, `rolling-back` until the device reports it (at once if it
     * already does). `deadline`: past it the row no longer keeps the rollout from ending.
     */
    rollBack(eff: Effects, row: DeviceRow, now: number, deadline: number, at: string): void {
      const written = writeFrom(eff, row);
      if (written === 'not-owner') {
        save(eff, row, { state: 'superseded', error: 'a newer rollout of this model took the device before the rollback' }, at);
        return;
      }
      if (written === 'no-manifest') {
        log.warn({ rolloutId: row.rolloutId, deviceId: row.deviceId, from: row.from }, 'rollback: no manifest of the previous version; the device keeps its assignment');
        save(eff, row, { state: 'failed', error: `cannot roll back: no manifest of ${row.from?.model}@${row.from?.version} is known` }, at);
        return;
      }
      const next = save(eff, row, { state: 'rolling-back', progress: null, deadline }, at);
      settleFromReport(eff, next, now, at);
    },
    /** Abort of one assigned row that has not switched: back to `from`; a failed (or locally rolled-back) row keeps its state and error. */
    cancel(eff: Effects, row: DeviceRow, at: string): void {
      if (row.assignedAt === null) {
        // Assigned before staged rollouts (migration 004): its `from` is unknown, not "none", and writing
        // it back would uninstall the model the device serves. Its assignment stays; its report still moves the row.
        log.warn({ rolloutId: row.rolloutId, deviceId: row.deviceId }, 'abort: the device was assigned before staged rollouts; its previous version is unknown, so its assignment stays');
        return;
      }
      const written = writeFrom(eff, row);
      if (row.state === 'failed' || row.state === 'rolled-back') return;
      if (written === 'no-manifest') {
        // Nothing to send it back to: it keeps the new assignment, so `cancelled` would claim a stop that did not happen.
        log.warn({ rolloutId: row.rolloutId, deviceId: row.deviceId, from: row.from }, 'abort: no manifest of the previous version; the device keeps its assignment');
        save(eff, row, { state: row.state, error: `not cancelled: no manifest of ${row.from?.model}@${row.from?.version} is known to send it back to, so it keeps this assignment` }, at);
        return;
      }
      save(eff, row, { state: written === 'not-owner' ? 'superseded' : 'cancelled', progress: null }, at);
    },
  };
}
export type DeviceAssignments = ReturnType<typeof createDeviceAssignments>;
