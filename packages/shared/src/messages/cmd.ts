import { Type, type Static } from 'typebox';
import { EnvelopeFields } from '../envelope.js';

/** One-off request from the hub; the verbs are added by the issues that need them. */
export const CmdMessage = Type.Object({
  id: Type.String({ minLength: 1 }),
  verb: Type.String({ minLength: 1 }),
  args: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type CmdMessage = Static<typeof CmdMessage>;

export const CmdResultMessage = Type.Object({
  ...EnvelopeFields,
  id: Type.String({ minLength: 1 }),
  ok: Type.Boolean(),
  result: Type.Optional(Type.Unknown()),
  error: Type.Optional(Type.String()),
});
export type CmdResultMessage = Static<typeof CmdResultMessage>;
