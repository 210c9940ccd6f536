import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { CmdMessage, CmdResultMessage } from './messages/cmd.js';
import { DesiredMessage } from './messages/desired.js';
import { DriftMessage } from './messages/drift.js';
import { EventMessage } from './messages/events.js';
import { ReportedMessage } from './messages/reported.js';
import { StatusMessage } from './messages/status.js';
import { TelemetryMessage } from './messages/telemetry.js';
import type { TopicKind } from './topics.js';

/** The payload schema of every topic kind: the one table both sides validate against. */
export const MESSAGE_SCHEMAS = {
  status: StatusMessage,
  telemetry: TelemetryMessage,
  reported: ReportedMessage,
  desired: DesiredMessage,
  events: EventMessage,
  drift: DriftMessage,
  cmd: CmdMessage,
  'cmd/result': CmdResultMessage,
} as const satisfies Record<TopicKind, TSchema>;

export type MessageOf<K extends TopicKind> = Static<(typeof MESSAGE_SCHEMAS)[K]>;

const validators = Object.fromEntries(
  Object.entries(MESSAGE_SCHEMAS).map(([kind, schema]) => [kind, Compile(schema)]),
) as { [K in TopicKind]: ReturnType<typeof Compile<(typeof MESSAGE_SCHEMAS)[K]>> };

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parses and validates a payload; never throws, so a garbage message cannot crash a process. */
export function decodeMessage<K extends TopicKind>(kind: K, payload: Uint8Array): DecodeResult<MessageOf<K>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch (err) {
    return { ok: false, error: `${kind} payload is not JSON: ${(err as Error).message}` };
  }
  const validator = validators[kind];
  if (!validator.Check(parsed)) {
    const first = validator.Errors(parsed)[0];
    return { ok: false, error: `${kind} payload does not match its schema at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}` };
  }
  return { ok: true, value: parsed as MessageOf<K> };
}

/** Validates before sending, so a bug surfaces at the sender rather than as a drop at the receiver. */
export function encodeMessage<K extends TopicKind>(kind: K, value: MessageOf<K>): Buffer {
  const validator = validators[kind];
  if (!validator.Check(value)) {
    const first = validator.Errors(value)[0];
    throw new Error(`refusing to send invalid ${kind} message: "${first?.instancePath ?? ''}" ${first?.message ?? ''}`);
  }
  return Buffer.from(JSON.stringify(value));
}
