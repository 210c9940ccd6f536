/** MQTT topic tree, one per device: `ef/v1/dev/{deviceId}/{kind}`. The only place topic strings are built. */
export const TOPIC_ROOT = 'ef/v1/dev';

/** Every topic kind with its direction and whether the broker retains it. */
export const TOPIC_TABLE = {
  status: { direction: 'agent-to-hub', retained: true, record: false },
  telemetry: { direction: 'agent-to-hub', retained: false, record: true },
  reported: { direction: 'agent-to-hub', retained: true, record: false },
  desired: { direction: 'hub-to-agent', retained: true, record: false },
  events: { direction: 'agent-to-hub', retained: false, record: true },
  drift: { direction: 'agent-to-hub', retained: false, record: true },
  cmd: { direction: 'hub-to-agent', retained: false, record: false },
  'cmd/result': { direction: 'agent-to-hub', retained: false, record: true },
} as const;

export type TopicKind = keyof typeof TOPIC_TABLE;
export const TOPIC_KINDS = Object.keys(TOPIC_TABLE) as TopicKind[];

/** Kinds a device may publish under its own tree. */
export const DEVICE_PUBLISH_KINDS: readonly TopicKind[] = TOPIC_KINDS.filter(
  (k) => TOPIC_TABLE[k].direction === 'agent-to-hub',
);
/** Kinds a device may subscribe to under its own tree. */
export const DEVICE_SUBSCRIBE_KINDS: readonly TopicKind[] = TOPIC_KINDS.filter(
  (k) => TOPIC_TABLE[k].direction === 'hub-to-agent',
);

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID.test(id);
}

export function deviceTopic(deviceId: string, kind: TopicKind): string {
  if (!isValidDeviceId(deviceId)) throw new Error(`invalid device id "${deviceId}": expected 1-64 of [A-Za-z0-9_-]`);
  return `${TOPIC_ROOT}/${deviceId}/${kind}`;
}

/** Wildcard subscription for one kind across the fleet (hub side). */
export function fleetTopic(kind: TopicKind): string {
  return `${TOPIC_ROOT}/+/${kind}`;
}

export interface ParsedTopic {
  deviceId: string;
  kind: TopicKind;
}

/** Parses a concrete device topic; null when it is not one of ours. */
export function parseDeviceTopic(topic: string): ParsedTopic | null {
  const prefix = `${TOPIC_ROOT}/`;
  if (!topic.startsWith(prefix)) return null;
  const rest = topic.slice(prefix.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  const deviceId = rest.slice(0, slash);
  const kind = rest.slice(slash + 1);
  if (!isValidDeviceId(deviceId) || !(kind in TOPIC_TABLE)) return null;
  return { deviceId, kind: kind as TopicKind };
}
