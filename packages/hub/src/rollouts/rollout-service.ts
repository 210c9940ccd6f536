import { randomBytes } from 'node:crypto';
import {
  deviceTopic,
  EdgefleetError,
  encodeMessage,
  type CreateRolloutRequest,
  type DeploymentEvent,
  type MessageOf,
  type Rollout,
  type RolloutDeviceState,
  type RolloutTarget,
} from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { DeploymentObserver } from '../broker/ingest-service.js';
import type { DeviceRepo } from '../devices/device-repo.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { ModelRepo } from '../models/model-repo.js';
import type { Db } from '../store/database.js';
import type { DesiredRepo } from './desired-repo.js';
import type { OpenAssignment, RolloutRepo } from './rollout-repo.js';
import { countStates, nextDesired, nextDeviceState, rolloutState } from './rollout-state.js';

export interface DesiredPublisher {
  publish(topic: string, payload: Buffer, opts: { retain: boolean }): Promise<void>;
}

/** Drives single-wave rollouts through desired/reported state; consumes device progress from ingest. */
export function createRolloutService(deps: {
  db: Db;
  rollouts: RolloutRepo;
  desired: DesiredRepo;
  devices: DeviceRepo;
  models: ModelRepo;
  broker: DesiredPublisher;
  bus: HubEventBus;
  log: Logger;
}) {
  const { db, rollouts, desired, devices, bus, log } = deps;

  function resolveTargets(target: RolloutTarget): string[] {
    if ('deviceIds' in target) {
      for (const id of target.deviceIds) {
        const creds = devices.credentials(id);
        if (!creds) throw new EdgefleetError('NOT_FOUND', `target device ${id} does not exist`);
        if (creds.revoked) throw new EdgefleetError('BAD_REQUEST', `target device ${id} is revoked`);
      }
      return [...new Set(target.deviceIds)];
    }
    const list = devices.list('labels' in target ? { labels: target.labels } : {});
    return list.filter((d) => !d.revoked).map((d) => d.id);
  }

  async function publishDesired(deviceId: string, doc: MessageOf<'desired'>): Promise<void> {
    await deps.broker.publish(deviceTopic(deviceId, 'desired'), encodeMessage('desired', doc), { retain: true });
  }

  function refresh(rolloutId: string, deviceId?: string, deviceState?: RolloutDeviceState): void {
    const states = rollouts.deviceStates(rolloutId);
    const state = rolloutState(states);
    rollouts.setState(rolloutId, state);
    bus.emit('rollout', { rolloutId, state, deviceId, deviceState, counts: countStates(states) });
  }

  function advance(a: OpenAssignment, next: RolloutDeviceState, progress: number | null, error: string | null): void {
    if (next === a.state && progress === null && error === null) return;
    rollouts.updateDevice(a.rolloutId, a.deviceId, { state: next, progress, error }, new Date().toISOString());
    if (next !== a.state) log.info({ rolloutId: a.rolloutId, deviceId: a.deviceId, state: next, error }, 'rollout device progress');
    refresh(a.rolloutId, a.deviceId, next);
  }

  /** A device reporting the rollout's file as its active model is done, whatever events were lost. */
  function markActive(deviceId: string, models: MessageOf<'reported'>['models']): void {
    const active = new Set(models.filter((m) => m.active).map((m) => m.sha256));
    for (const a of rollouts.openAssignments(deviceId)) {
      if (active.has(a.sha256)) advance(a, 'active', 1, null);
    }
  }

  const observer: DeploymentObserver = {
    onDeploymentEvent(deviceId: string, ev: DeploymentEvent) {
      const a = ev.rolloutId
        ? rollouts.assignment(ev.rolloutId, deviceId)
        : rollouts.openAssignments(deviceId).find((o) => o.model === ev.model && o.version === ev.version);
      if (!a || a.sha256 !== ev.sha256) return;
      const next = nextDeviceState(a.state, ev.phase);
      const error = next === 'failed' && ev.phase === 'failed' ? `${ev.code ? `${ev.code}: ` : ''}${ev.message ?? 'deployment failed'}` : null;
      advance(a, next, next === 'active' ? 1 : (ev.progress ?? null), error);
    },
    onReported(deviceId: string, reported: MessageOf<'reported'>) {
      markActive(deviceId, reported.models);
    },
  };

  return {
    observer,
    async create(req: CreateRolloutRequest): Promise<Rollout> {
      const version = deps.models.get(req.model, req.version);
      if (!version) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${req.model}@${req.version} does not exist: upload it first`);
      const targets = resolveTargets(req.target);
      if (targets.length === 0) throw new EdgefleetError('BAD_REQUEST', 'the rollout target matches no enrolled device');
      const id = `ro-${randomBytes(6).toString('hex')}`;
      const createdAt = new Date().toISOString();
      const superseded = new Set<string>();
      const docs = new Map<string, MessageOf<'desired'>>();
      db.transaction(() => {
        for (const deviceId of targets) {
          for (const old of rollouts.openAssignments(deviceId).filter((o) => o.model === req.model)) {
            rollouts.updateDevice(old.rolloutId, deviceId, { state: 'failed', progress: null, error: `superseded by rollout ${id}` }, createdAt);
            superseded.add(old.rolloutId);
          }
        }
        rollouts.insert({ id, model: req.model, version: req.version, sha256: version.sha256, target: req.target, state: 'in-progress', createdAt }, targets);
        for (const deviceId of targets) {
          const doc = nextDesired(desired.get(deviceId), { rolloutId: id, manifest: version.manifest });
          desired.put(deviceId, doc);
          devices.setDesiredVersion(deviceId, doc.version);
          docs.set(deviceId, doc);
        }
      })();
      for (const old of superseded) refresh(old);
      log.info({ rolloutId: id, model: req.model, version: req.version, devices: targets.length }, 'rollout created');
      await Promise.all([...docs].map(([deviceId, doc]) => publishDesired(deviceId, doc)));
      refresh(id);
      for (const deviceId of targets) markActive(deviceId, devices.get(deviceId)?.models ?? []);
      return rollouts.get(id)!;
    },
    get(id: string): Rollout {
      const r = rollouts.get(id);
      if (!r) throw new EdgefleetError('NOT_FOUND', `rollout ${id} does not exist`);
      return r;
    },
    list(): Rollout[] {
      return rollouts.list();
    },
    /** At hub start: aedes keeps retained messages in memory only, so SQLite's desired documents are republished. */
    async republishAll(): Promise<number> {
      const docs = desired.all();
      await Promise.all(docs.map((d) => publishDesired(d.deviceId, d.doc)));
      return docs.length;
    },
  };
}
export type RolloutService = ReturnType<typeof createRolloutService>;
