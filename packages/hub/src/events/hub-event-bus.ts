import type { ModelStats, SystemStats } from '@edgefleet/shared';
import type { Logger } from 'pino';

/** What the hub tells its own listeners (the dashboard's SSE stream) about; names double as SSE event names. */
export interface HubEventMap {
  /** Presence, labels, revocation, reported state changed. */
  device: { deviceId: string; change: 'online' | 'offline' | 'reported' | 'labels' | 'revoked' | 'restored' | 'enrolled' };
  telemetry: { deviceId: string; seq: number; ts: string; system: SystemStats; models: ModelStats[] };
  /** A rollout moved: its state, the wave it works on (null when none is), device counts by state, and the last device that moved. */
  rollout: { rolloutId: string; state: string; wave: number | null; counts: Record<string, number>; deviceId?: string; deviceState?: string };
  /** A variant build moved: its state and progress, and the variant whose state just changed, if one did. */
  variants: { model: string; version: string; state: string; progress: { done: number; total: number; profile: string | null; step: string | null }; profile?: string; variantState?: string };
  /** A device's plan for a model version changed. */
  plan: { deviceId: string; model: string; version: string; profile: string; decidedBy: string };
  /** A drift evaluation window closed (deviceId null: the fleet's), or an alert was raised or cleared. */
  drift: { model: string; version: string; deviceId: string | null; score: number; over: boolean; alert?: 'raised' | 'cleared' };
}
export type HubEventName = keyof HubEventMap;

export type HubEventListener = <K extends HubEventName>(name: K, payload: HubEventMap[K]) => void;

export interface HubEventBus {
  /** Never throws: a failing listener is logged and the others still run. */
  emit<K extends HubEventName>(name: K, payload: HubEventMap[K]): void;
  /** Subscribes to every event; returns the unsubscribe function. */
  subscribe(listener: HubEventListener): () => void;
}

/**
 * In-process event bus. Events are emitted from broker callbacks and ingest commits, where an
 * exception would end the process or fail a committed batch, so each listener runs in its own
 * try/catch: one bad subscriber (or one unrenderable device) costs only its own delivery.
 */
export function createHubEventBus(log: Logger): HubEventBus {
  const listeners = new Set<HubEventListener>();
  return {
    emit(name, payload) {
      // A snapshot, so a listener that unsubscribes (or subscribes) during delivery does not skip or repeat others.
      for (const listener of [...listeners]) {
        try {
          listener(name, payload);
        } catch (err) {
          const deviceId = (payload as { deviceId?: string }).deviceId;
          log.error({ err, event: name, deviceId }, 'hub event listener failed; other listeners still get the event');
        }
      }
    },
    subscribe(listener) {
      // A function wrapper per subscription: the same listener subscribed twice is two subscriptions.
      const entry: HubEventListener = (name, payload) => listener(name, payload);
      listeners.add(entry);
      return () => {
        listeners.delete(entry);
      };
    },
  };
}
