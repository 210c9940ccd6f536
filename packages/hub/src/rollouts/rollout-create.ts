import { randomBytes } from 'node:crypto';
import {
  EdgefleetError,
  type CreateRolloutRequest,
  type Device,
  type Profile,
  type RolloutSettings,
  type SignedManifest,
  type RolloutTarget,
  type VersionRef,
} from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { DeviceRepo } from '../devices/device-repo.js';
import type { ModelRepo } from '../models/model-repo.js';
import { assignmentOf } from './desired-doc.js';
import type { DesiredRepo } from './desired-repo.js';
import { refOf, type DeviceAssignments, type Effects } from './device-assignments.js';
import { activeVersionOf, IN_FLIGHT_STATES } from './device-transitions.js';
import { assertRequestRules } from './request-rules.js';
import type { WaveCore } from './rollout-machine.js';
import type { RolloutRepo } from './rollout-repo.js';
import type { RolloutRecord } from './rollout-rows.js';
import type { RolloutWindows } from './rollout-windows.js';
import { DEFAULT_WAVES, planWaves } from './wave-plan.js';

/** Rows of an older rollout that a newer one of the same model takes over. */
const SUPERSEDED_STATES = ['pending', 'waiting', ...IN_FLIGHT_STATES, 'timed-out', 'rolling-back'] as const;

function settingsOf(req: CreateRolloutRequest): RolloutSettings {
  return {
    maxConcurrentDownloads: req.maxConcurrentDownloads ?? 100,
    deviceTimeoutSec: req.deviceTimeoutSec ?? 900,
    autoRollback: req.autoRollback ?? false,
    maxDeferSec: req.maxDeferSec ?? 600,
    maintenanceWindow: req.maintenanceWindow ?? null,
    shadow: req.shadow ?? null,
    healthWindow: req.healthWindow ?? null,
  };
}

/** Which variant of a version each device gets (plans/plan-service.ts). */
export interface RolloutVariants {
  /** Per device id, the signed manifest of its planned variant, or of `pinned` for all (BAD_REQUEST when that is not an accepted profile). */
  variantsFor(devices: readonly Device[], key: { model: string; version: string }, pinned?: Profile): Promise<Map<string, SignedManifest>>;
}

/** Without a planner (the rollout machinery on its own) every device gets the version's fp32 manifest. */
function fp32Only(devices: readonly Device[], fp32: SignedManifest, key: { model: string; version: string }, pinned?: Profile): Map<string, SignedManifest> {
  if (pinned && pinned !== 'fp32') throw new EdgefleetError('BAD_REQUEST', `profile ${pinned} is not an accepted variant of ${key.model}@${key.version}: accepted are fp32`);
  return new Map(devices.map((d) => [d.id, fp32]));
}

/**
 * Creating a rollout: the request checked, its targets resolved, planned into waves and each given
 * its planned variant, and in one transaction the rollout stored, older rollouts' rows of the same
 * devices superseded and the first wave assigned.
 */
export function createRolloutCreation(deps: {
  rollouts: RolloutRepo;
  desired: DesiredRepo;
  devices: DeviceRepo;
  models: ModelRepo;
  assignments: DeviceAssignments;
  /** The planner; absent, every device gets fp32. */
  variants?: RolloutVariants;
  windows: Pick<RolloutWindows, 'openUntil' | 'watch'>;
  transact: (fn: (eff: Effects) => void) => { published: Promise<void> };
  advance: (eff: Effects, rolloutId: string, now: number) => void;
  log: Logger;
  clock: () => number;
  /** Whether the hub evaluates drift (the drift gate can judge); default false. */
  evaluatesDrift?: boolean;
}) {
  const { rollouts, devices, assignments, log } = deps;

  function resolveTargets(target: RolloutTarget): Device[] {
    if ('deviceIds' in target) {
      const ids = [...new Set(target.deviceIds)];
      return ids.map((id) => {
        const device = devices.get(id);
        if (!device) throw new EdgefleetError('NOT_FOUND', `target device ${id} does not exist`);
        if (device.revoked) throw new EdgefleetError('BAD_REQUEST', `target device ${id} is revoked`);
        return device;
      });
    }
    return devices.list('labels' in target ? { labels: target.labels } : {}).filter((d) => !d.revoked);
  }

  /** What the device runs now: its reported active version, else (the desired document is large: read only then) its assignment. */
  function fromOf(device: Device, model: string): VersionRef | null {
    const active = activeVersionOf(device.models, model);
    if (active) return active;
    const previous = assignmentOf(deps.desired.get(device.id), model)?.manifest;
    return previous ? refOf(previous) : null;
  }

  /**
   * A newer rollout of the same model takes the devices it targets from older ones that have not finished with them
   * (one query for the model's open rows, not one per target).
   * A row still rolling back (say, its device offline) is the newer rollout's now: the device's desired document no longer says `from`.
   */
  function supersede(eff: Effects, model: string, targets: ReadonlyMap<string, Device>, id: string, at: string): void {
    for (const old of rollouts.rowsOfModel(model, SUPERSEDED_STATES)) {
      if (old.to.model === model && targets.has(old.deviceId)) assignments.save(eff, old, { state: 'superseded', error: `superseded by rollout ${id}` }, at);
    }
  }

  /** Stores the rollout and assigns its first devices; returns its id. */
  return async function create(req: CreateRolloutRequest): Promise<string> {
    const version = deps.models.get(req.model, req.version);
    if (!version) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${req.model}@${req.version} does not exist: upload it first`);
    assertRequestRules(req, { evaluatesDrift: deps.evaluatesDrift ?? false });
    const targets = resolveTargets(req.target);
    if (targets.length === 0) throw new EdgefleetError('BAD_REQUEST', 'the rollout target matches no enrolled device');
    const specs = req.waves ?? [...DEFAULT_WAVES];
    const members = planWaves(targets, specs);
    const byId = new Map(targets.map((d) => [d.id, d]));
    const key = { model: req.model, version: req.version };
    // Planned before the transaction, a slice of devices per turn: planning thousands at once would hold the event loop.
    const toManifests = deps.variants ? await deps.variants.variantsFor(targets, key, req.profile) : fp32Only(targets, version.manifest, key, req.profile);
    const id = `ro-${randomBytes(6).toString('hex')}`;
    const now = deps.clock();
    const createdAt = new Date(now).toISOString();
    // The rollout names the version by its fp32 file; each device row names the variant planned for it.
    const rec: RolloutRecord = {
      core: { id, state: 'running', settings: settingsOf(req), reason: null, windowOpenUntil: deps.windows.openUntil(req.maintenanceWindow, now) },
      model: req.model,
      version: req.version,
      sha256: version.sha256,
      target: req.target,
      createdAt,
      updatedAt: createdAt,
    };
    const started = performance.now();
    const { published } = deps.transact((eff) => {
      supersede(eff, req.model, byId, id, createdAt);
      const waves = specs.map((spec, index): WaveCore => ({ index, state: 'pending', spec, startedAt: null, bakeUntil: null, endedAt: null, gates: [], override: false }));
      rollouts.insert(
        rec,
        waves,
        members.map((m) => {
          const toManifest = toManifests.get(m.deviceId) ?? version.manifest;
          return { ...m, from: fromOf(byId.get(m.deviceId)!, req.model), to: refOf(toManifest), toManifest };
        }),
      );
      for (const rolloutId of [...eff.touched.keys()]) deps.advance(eff, rolloutId, now);
      eff.touched.set(id, {});
      deps.advance(eff, id, now);
    });
    const transactionMs = Math.round(performance.now() - started);
    const profiles = [...new Set([...toManifests.values()].map((m) => m.manifest.profile))];
    log.info({ rolloutId: id, model: req.model, version: req.version, devices: targets.length, waves: specs.length, profiles, transactionMs }, 'rollout created');
    // The stored state, not `rec`: a rollout whose devices all run the version already finished in the transaction.
    deps.windows.watch(rollouts.record(id)!);
    // Answered without waiting for the broker: the documents are in SQLite (republished at start), and
    // publishing a thousand retained documents is what kept the answer waiting for seconds.
    published.catch((err: unknown) => log.error({ err, rolloutId: id }, 'announcing the new rollout failed'));
    return id;
  };
}
