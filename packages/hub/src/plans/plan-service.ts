import { EdgefleetError, type Device, type DevicePlan, type MessageOf, type Profile, type SignedManifest, type VariantDetail } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { deviceClassOf, UNKNOWN_CLASS } from '../compression/device-class.js';
import { acceptedVariantOf, planDevice, type MeasuredLatency } from '../compression/planner.js';
import type { RecordStreams } from '../broker/record-streams.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { ModelRepo } from '../models/model-repo.js';
import type { VariantRepo } from '../models/variant-repo.js';
import type { Db } from '../store/database.js';
import type { PlannedDevice, PlanRepo } from './plan-repo.js';

export interface VersionKey {
  model: string;
  version: string;
}

/**
 * Devices planned per transaction and turn of the event loop. One device for one version (read and
 * check its capabilities, rank the variants, compare with the stored plan, write it when changed)
 * costs ~70-130 µs here, the commit's fsync the rest: re-planning 10,000 devices (2 cores, 6
 * variants) took 1.3 s with the longest turn 24 ms when every plan was new, 0.7 s and 35 ms when none
 * changed; at 100 per slice the longest turns were 60 and 88 ms.
 */
export const PLAN_SLICE = 50;

/** Which devices a re-plan covers: all of them, or those named and those of the named classes. */
interface DeviceScope {
  all: boolean;
  ids: Set<string>;
  classes: Set<string>;
}
const emptyScope = (): DeviceScope => ({ all: false, ids: new Set(), classes: new Set() });

/** What the planner needs of one version, read once per re-plan: its variants and the benchmarks of them by device and by class. */
interface VersionContext extends VersionKey {
  variants: VariantDetail[];
  byDevice: Map<string, MeasuredLatency[]>;
  byClass: Map<string, MeasuredLatency[]>;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A version's accepted variants, fp32 always among them (upload writes its row with the version,
 * migration 005 wrote it for older versions); undefined when the version does not exist.
 */
export function acceptedVariants(variants: VariantRepo, key: VersionKey): VariantDetail[] | undefined {
  const accepted = variants.accepted(key.model, key.version);
  return accepted.some((v) => v.profile === 'fp32') ? accepted : undefined;
}

/**
 * Device plans: computes them with the pure planner from stored data, stores a plan only when it
 * changed (and tells the bus), and re-plans when something the planner reads changes: a device
 * enrolls or reports other capabilities, a variant build finishes, a benchmark is stored, or the
 * schedule comes round. Re-plans are queued and coalesced, and run PLAN_SLICE devices per turn.
 */
export function createPlanService(deps: { db: Db; plans: PlanRepo; variants: VariantRepo; models: ModelRepo; bus: HubEventBus; log: Logger; clock?: () => number }) {
  const { db, plans, models, bus, log } = deps;
  const clock = deps.clock ?? Date.now;
  let stopped = false;
  let unsubscribe: (() => void) | null = null;

  function contextOf(key: VersionKey): VersionContext | undefined {
    const variants = acceptedVariants(deps.variants, key);
    if (!variants) return undefined;
    const byDevice = new Map<string, MeasuredLatency[]>();
    const byClass = new Map<string, MeasuredLatency[]>();
    // Runs synchronously for each rollout and re-plan: two queries whatever the number of measuring devices (not
    // one per device), and devices with identical capabilities share one parsed object, so their class is worked out once.
    const classes = new Map<PlannedDevice['capabilities'], string>();
    for (const { device, measured } of plans.measuredDevicesOfVersion(key.model, key.version)) {
      const latencies = measured.map((m) => ({ deviceId: device.id, sha256: m.sha256, p50Ms: m.p50Ms }));
      byDevice.set(device.id, latencies);
      let cls = classes.get(device.capabilities);
      if (cls === undefined) classes.set(device.capabilities, (cls = deviceClassOf(device.capabilities).name));
      if (cls === UNKNOWN_CLASS.name) continue;
      const ofClass = byClass.get(cls);
      if (ofClass) ofClass.push(...latencies);
      else byClass.set(cls, latencies.slice());
    }
    return { ...key, variants, byDevice, byClass };
  }

  function planOne(ctx: VersionContext, device: PlannedDevice, plannedAt: string, pinned?: Profile): DevicePlan {
    const cls = deviceClassOf(device.capabilities).name;
    return planDevice({
      deviceId: device.id,
      capabilities: device.capabilities,
      model: ctx.model,
      version: ctx.version,
      variants: ctx.variants,
      deviceMeasurements: ctx.byDevice.get(device.id) ?? [],
      classMeasurements: ctx.byClass.get(cls) ?? [],
      ...(pinned ? { pinned } : {}),
      plannedAt,
    });
  }

  /** Stores the plan when it decides differently from the stored one; true when it did. */
  function storeIfChanged(plan: DevicePlan): boolean {
    if (plans.storedSame(plan)) return false;
    plans.savePlan(plan);
    return true;
  }

  const announce = (changed: readonly DevicePlan[]) => {
    for (const p of changed) bus.emit('plan', { deviceId: p.deviceId, model: p.model, version: p.version, profile: p.profile, decidedBy: p.decidedBy });
  };

  /** Plans one slice of devices for every context in one transaction, storing the plans that changed; a device that fails to plan is logged and left out. */
  function planSlice(contexts: readonly VersionContext[], devices: readonly PlannedDevice[]): { plans: DevicePlan[]; changed: DevicePlan[] } {
    const plannedAt = new Date(clock()).toISOString();
    const planned: DevicePlan[] = [];
    const changed: DevicePlan[] = [];
    db.transaction(() => {
      for (const device of devices) {
        for (const ctx of contexts) {
          try {
            const plan = planOne(ctx, device, plannedAt);
            planned.push(plan);
            if (storeIfChanged(plan)) changed.push(plan);
          } catch (err) {
            log.error({ err, deviceId: device.id, model: ctx.model, version: ctx.version }, 'planning a device failed; its stored plan stays');
          }
        }
      }
    })();
    announce(changed);
    return { plans: planned, changed };
  }

  function latestVersions(): VersionKey[] {
    return models.list().map((m) => ({ model: m.name, version: m.latest }));
  }

  /** One re-plan of these versions over the scope's devices, a slice per turn; returns the plans that changed. */
  async function replanPass(keys: readonly VersionKey[], scope: DeviceScope): Promise<DevicePlan[]> {
    const contexts = keys.map(contextOf).filter((c): c is VersionContext => c !== undefined);
    const changed: DevicePlan[] = [];
    if (contexts.length === 0) return changed;
    if (!scope.all && scope.classes.size === 0) {
      const ids = [...scope.ids];
      for (let i = 0; i < ids.length && !stopped; i += PLAN_SLICE) {
        await nextTurn();
        if (stopped) break;
        const devices = ids.slice(i, i + PLAN_SLICE).flatMap((id) => plans.plannedDevice(id) ?? []);
        changed.push(...planSlice(contexts, devices).changed);
      }
      return changed;
    }
    const wanted = (d: PlannedDevice) => scope.all || scope.ids.has(d.id) || scope.classes.has(deviceClassOf(d.capabilities).name);
    for (let after: number | null = 0; after !== null && !stopped; ) {
      await nextTurn();
      if (stopped) break;
      const page = plans.plannedDevicePage(after, PLAN_SLICE);
      changed.push(...planSlice(contexts, page.devices.filter(wanted)).changed);
      after = page.next;
    }
    return changed;
  }

  // The queue: re-plans asked for by events, coalesced until the running pass is done.
  let waitingLatest = emptyScope();
  let waitingVersions = new Map<string, { key: VersionKey; scope: DeviceScope }>();
  let draining: Promise<void> | null = null;
  const hasWaiting = () => waitingLatest.all || waitingLatest.ids.size > 0 || waitingVersions.size > 0;

  async function drain(): Promise<void> {
    while (hasWaiting() && !stopped) {
      const latest = waitingLatest;
      const versions = [...waitingVersions.values()];
      waitingLatest = emptyScope();
      waitingVersions = new Map();
      try {
        if (latest.all || latest.ids.size > 0) await replanPass(latestVersions(), latest);
        for (const v of versions) await replanPass([v.key], v.scope);
      } catch (err) {
        log.error({ err }, 're-plan failed; the next event or the schedule plans again');
      }
    }
  }

  function schedule(): void {
    if (draining || stopped) return;
    draining = drain().finally(() => {
      draining = null;
      if (hasWaiting()) schedule();
    });
  }

  function waitingFor(key: VersionKey): DeviceScope {
    const k = `${key.model}\n${key.version}`;
    let entry = waitingVersions.get(k);
    if (!entry) waitingVersions.set(k, (entry = { key, scope: emptyScope() }));
    return entry.scope;
  }

  /** Capabilities the planner reads, per device, as last seen: a report that changes none of them does not re-plan. */
  const planningKeys = new Map<string, string>();

  return {
    /** Follows committed reports: one re-plans its device when its class or memory changed (or the hub has not seen it since start). */
    follow(streams: Pick<RecordStreams, 'reported'>): () => void {
      return streams.reported.subscribe((deviceId: string, reported: MessageOf<'reported'>) => {
        const key = `${deviceClassOf(reported.capabilities).name}/${reported.capabilities.memoryMb}`;
        if (planningKeys.get(deviceId) === key) return;
        planningKeys.set(deviceId, key);
        waitingLatest.ids.add(deviceId);
        schedule();
      });
    },
    /** A benchmark of this version was stored for this device: re-plan it and the other devices of its class. */
    afterBenchmark(deviceId: string, key: VersionKey): void {
      const scope = waitingFor(key);
      scope.ids.add(deviceId);
      const cls = deviceClassOf(plans.plannedDevice(deviceId)?.capabilities).name;
      if (cls !== UNKNOWN_CLASS.name) scope.classes.add(cls);
      schedule();
    },
    /**
     * The variant each of these devices gets of this version: its plan, computed now (and stored when
     * changed), or the pinned profile for all (BAD_REQUEST naming the accepted ones when it is not one).
     * A pin does not change the stored plans: they still say what the planner would choose.
     */
    async variantsFor(devices: readonly Pick<Device, 'id' | 'capabilities'>[], key: VersionKey, pinned?: Profile): Promise<Map<string, SignedManifest>> {
      const ctx = contextOf(key);
      if (!ctx) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${key.model}@${key.version} does not exist: upload it first`);
      const pinnedManifest = pinned ? acceptedVariantOf(key, ctx.variants, pinned).manifest! : undefined;
      const manifestBySha = new Map(ctx.variants.flatMap((v) => (v.sha256 && v.manifest ? [[v.sha256, v.manifest] as const] : [])));
      const fp32 = ctx.variants.find((v) => v.profile === 'fp32')!.manifest!;
      const chosen = new Map<string, SignedManifest>();
      for (let i = 0; i < devices.length; i += PLAN_SLICE) {
        if (i > 0) await nextTurn();
        const slice = devices.slice(i, i + PLAN_SLICE).map((d) => ({ id: d.id, capabilities: d.capabilities }));
        for (const plan of planSlice([ctx], slice).plans) chosen.set(plan.deviceId, manifestBySha.get(plan.sha256)!);
        // A device that could not be planned (logged) gets fp32, which every device runs.
        for (const d of slice) chosen.set(d.id, pinnedManifest ?? chosen.get(d.id) ?? fp32);
      }
      return chosen;
    },
    /** Re-plans now and answers what changed: one version, a model's latest, or every model's latest. */
    async replan(filter: { model?: string; version?: string } = {}): Promise<DevicePlan[]> {
      let keys: VersionKey[];
      if (filter.model !== undefined && filter.version !== undefined) {
        if (!models.get(filter.model, filter.version)) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${filter.model}@${filter.version} does not exist`);
        keys = [{ model: filter.model, version: filter.version }];
      } else if (filter.model !== undefined) {
        keys = latestVersions().filter((k) => k.model === filter.model);
        if (keys.length === 0) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${filter.model} does not exist`);
      } else {
        if (filter.version !== undefined) throw new EdgefleetError('BAD_REQUEST', 'a version needs its model: give both, or model alone for its latest version');
        keys = latestVersions();
      }
      const changed = await replanPass(keys, { ...emptyScope(), all: true });
      log.info({ versions: keys.length, changed: changed.length }, 're-planned');
      return changed;
    },
    list(filter: { model?: string; version?: string; deviceId?: string }): DevicePlan[] {
      return plans.list(filter);
    },
    /** Listens for enrollments and finished builds. */
    start(): void {
      unsubscribe = bus.subscribe((name, payload) => {
        if (name === 'device' && (payload as { change: string }).change === 'enrolled') {
          waitingLatest.ids.add((payload as { deviceId: string }).deviceId);
          schedule();
        } else if (name === 'variants' && (payload as { state: string }).state === 'done') {
          const { model, version } = payload as VersionKey;
          // Plans are kept for each model's latest version; a rollout of an older one plans its devices when it is created.
          if (latestVersions().some((k) => k.model === model && k.version === version)) {
            waitingFor({ model, version }).all = true;
            schedule();
          }
        }
      });
    },
    /** Stops listening and lets a running slice finish; no slice starts afterwards. */
    async stop(): Promise<void> {
      stopped = true;
      unsubscribe?.();
      unsubscribe = null;
      await draining;
    },
  };
}
export type PlanService = ReturnType<typeof createPlanService>;
