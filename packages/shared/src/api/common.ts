import { Type, type Static } from 'typebox';

/** Every hub API error: a message naming the problem and a stable code from error-codes.ts. */
export const ApiError = Type.Object({ error: Type.String(), code: Type.String() });
export type ApiError = Static<typeof ApiError>;

export const Labels = Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,63}$' }), Type.String({ maxLength: 255 }), { additionalProperties: false });
export type Labels = Static<typeof Labels>;
