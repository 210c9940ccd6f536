import { DEVICE_PUBLISH_KINDS, DEVICE_SUBSCRIBE_KINDS, parseDeviceTopic, type TopicKind } from '@edgefleet/shared';

/** Pure broker policy: a device publishes and subscribes only under its own tree, only the kinds the wire table allows. */
export type PublishDecision = { ok: true; kind: TopicKind } | { ok: false; reason: string };

export function canPublish(username: string, topic: string): PublishDecision {
  const parsed = parseDeviceTopic(topic);
  if (!parsed) return { ok: false, reason: `topic "${topic}" is not a device topic` };
  if (parsed.deviceId !== username) return { ok: false, reason: `device ${username} may not publish under ${parsed.deviceId}'s tree` };
  if (!DEVICE_PUBLISH_KINDS.includes(parsed.kind)) return { ok: false, reason: `devices may not publish ${parsed.kind}` };
  return { ok: true, kind: parsed.kind };
}

/** Subscriptions must be exact topics (no wildcards) of the device's own hub→agent kinds. */
export function canSubscribe(username: string, topic: string): boolean {
  const parsed = parseDeviceTopic(topic);
  return parsed !== null && parsed.deviceId === username && DEVICE_SUBSCRIBE_KINDS.includes(parsed.kind);
}
