import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { jsonDepthExceeds } from './json-depth.js';
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

const KB = 1024;
/**
 * Largest payload accepted per topic kind, bytes. Device kinds are a few times what a real agent
 * sends (telemetry with a dozen models is ~3 KB, a drift window of 50 features 2–4 KB); `desired`
 * carries signed manifests with inline golden vectors (≤ 64 KB of golden tensors in all), so it gets room for
 * several models. Checked on decode (both sides) and on encode (the sender finds out first).
 */
export const MESSAGE_SIZE_LIMITS: Readonly<Record<TopicKind, number>> = {
  status: 1 * KB,
  telemetry: 64 * KB,
  reported: 64 * KB,
  events: 16 * KB,
  drift: 256 * KB,
  'cmd/result': 256 * KB,
  desired: 16 * 1024 * KB,
  cmd: 256 * KB,
};

/**
 * Deepest nesting of arrays/objects in any message. The fixed schemas need at most 4; the open
 * parts (drift `summary`, cmd `args`/`result`) get room to spare, while values deep enough to
 * overflow a recursive `JSON.stringify` (a few thousand levels) are refused at the edge.
 */
export const MAX_JSON_DEPTH = 32;

export type MessageOf<K extends TopicKind> = Static<(typeof MESSAGE_SCHEMAS)[K]>;

const validators = Object.fromEntries(
  Object.entries(MESSAGE_SCHEMAS).map(([kind, schema]) => [kind, Compile(schema)]),
) as { [K in TopicKind]: ReturnType<typeof Compile<(typeof MESSAGE_SCHEMAS)[K]>> };

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** Why `value` is not a valid `kind` message, or null when it is. Never throws. */
function invalidity(kind: TopicKind, value: unknown): string | null {
  try {
    if (jsonDepthExceeds(value, MAX_JSON_DEPTH)) return `${kind} payload nests deeper than ${MAX_JSON_DEPTH} levels`;
    const validator = validators[kind];
    if (validator.Check(value)) return null;
    const first = validator.Errors(value)[0];
    return `${kind} payload does not match its schema at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}`;
  } catch (err) {
    return `${kind} payload could not be checked: ${(err as Error).message}`;
  }
}

/** Parses and validates a payload; never throws, so a garbage message cannot crash a process. */
export function decodeMessage<K extends TopicKind>(kind: K, payload: Uint8Array): DecodeResult<MessageOf<K>> {
  const limit = MESSAGE_SIZE_LIMITS[kind];
  if (payload.byteLength > limit) return { ok: false, error: `${kind} payload is ${payload.byteLength} bytes: at most ${limit} expected` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch (err) {
    return { ok: false, error: `${kind} payload is not JSON: ${(err as Error).message}` };
  }
  const error = invalidity(kind, parsed);
  return error === null ? { ok: true, value: parsed as MessageOf<K> } : { ok: false, error };
}

/** Validates before sending, so a bug surfaces at the sender rather than as a drop at the receiver. */
export function encodeMessage<K extends TopicKind>(kind: K, value: MessageOf<K>): Buffer {
  const error = invalidity(kind, value);
  if (error !== null) throw new Error(`refusing to send invalid ${kind} message: ${error}`);
  const bytes = Buffer.from(JSON.stringify(value));
  const limit = MESSAGE_SIZE_LIMITS[kind];
  if (bytes.byteLength > limit) throw new Error(`refusing to send invalid ${kind} message: ${bytes.byteLength} bytes, at most ${limit} expected`);
  return bytes;
}
