import { Type } from 'typebox';

/**
 * Bounds shared by the device message schemas. JSON has no NaN or Infinity, but 1e308 is finite:
 * every number a device sends gets a ceiling that still leaves room for any real reading, so a
 * stored value can always be rendered, summed or turned into a date.
 */
export const CLOSED = { additionalProperties: false } as const;

/** A percentage, 0..100. */
export const Percent = Type.Number({ minimum: 0, maximum: 100 });
/** Megabytes (memory, RSS): up to a petabyte. */
export const Megabytes = Type.Number({ minimum: 0, maximum: 1e9 });
/** A latency in milliseconds: up to about 11 days. */
export const LatencyMs = Type.Number({ minimum: 0, maximum: 1e9 });
/** A counter that must stay an exact double. */
export const Counter = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/** Short identifiers (model, version, profile, rollout id, error code) and free text. */
export const Name = Type.String({ maxLength: 128 });
export const ShortText = Type.String({ maxLength: 256 });
/** The longest free text a device may send (error messages): senders cut theirs to this. */
export const LONG_TEXT_MAX = 4096;
export const LongText = Type.String({ maxLength: LONG_TEXT_MAX });
