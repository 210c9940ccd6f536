import { EventEmitter } from 'node:events';
import type { ModelStats, SystemStats } from '@edgefleet/shared';

/** What the hub tells its own listeners (the dashboard's SSE stream) about; names double as SSE event names. */
export interface HubEventMap {
  /** Presence, labels, revocation, reported state changed. */
  device: { deviceId: string; change: 'online' | 'offline' | 'reported' | 'labels' | 'revoked' | 'enrolled' };
  telemetry: { deviceId: string; seq: number; ts: string; system: SystemStats; models: ModelStats[] };
  rollout: { rolloutId: string; state: string; deviceId?: string; deviceState?: string; counts: Record<string, number> };
}
export type HubEventName = keyof HubEventMap;

export interface HubEventBus {
  emit<K extends HubEventName>(name: K, payload: HubEventMap[K]): void;
  /** Subscribes to every event; returns the unsubscribe function. */
  subscribe(listener: <K extends HubEventName>(name: K, payload: HubEventMap[K]) => void): () => void;
}

export function createHubEventBus(): HubEventBus {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    emit(name, payload) {
      emitter.emit('event', name, payload);
    },
    subscribe(listener) {
      emitter.on('event', listener);
      return () => emitter.off('event', listener);
    },
  };
}
