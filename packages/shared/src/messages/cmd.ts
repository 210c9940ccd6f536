import { Type, type Static } from 'typebox';
import { EnvelopeFields } from '../envelope.js';
import { CLOSED, LongText } from './bounds.js';

/** One-off request from the hub; the verbs are added by the issues that need them. */
export const CmdMessage = Type.Object({
  id: Type.String({ minLength: 1 }),
  verb: Type.String({ minLength: 1 }),
  args: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type CmdMessage = Static<typeof CmdMessage>;

/** `result` is open (each verb defines its own); the cmd/result size limit and the JSON depth limit bound it. */
export const CmdResultMessage = Type.Object(
  {
    ...EnvelopeFields,
    id: Type.String({ minLength: 1, maxLength: 128 }),
    ok: Type.Boolean(),
    result: Type.Optional(Type.Unknown()),
    error: Type.Optional(LongText),
  },
  CLOSED,
);
export type CmdResultMessage = Static<typeof CmdResultMessage>;
