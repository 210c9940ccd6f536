import { Type, type Static } from 'typebox';

/** Operator roles, weakest first: each role may do everything the ones before it may. */
export const OPERATOR_ROLES = ['viewer', 'operator', 'admin'] as const;
export const OperatorRole = Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('admin')]);
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

export const CreateApiTokenRequest = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9_.@ -]{1,64}$' }),
    role: OperatorRole,
    /** Lifetime in seconds; without it the token lasts until it is revoked. */
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 366 * 24 * 3600 })),
  },
  { additionalProperties: false },
);
export type CreateApiTokenRequest = Static<typeof CreateApiTokenRequest>;

/** An API token as listed: never its secret. */
export const ApiToken = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: OperatorRole,
  createdAt: Type.String(),
  expiresAt: Type.Union([Type.String(), Type.Null()]),
});
export type ApiToken = Static<typeof ApiToken>;

/** The answer to creating a token: the only time its secret is shown. */
export const CreatedApiToken = Type.Object({ ...ApiToken.properties, token: Type.String() });
export type CreatedApiToken = Static<typeof CreatedApiToken>;

export const ApiTokenList = Type.Object({ tokens: Type.Array(ApiToken) });
export type ApiTokenList = Static<typeof ApiTokenList>;
