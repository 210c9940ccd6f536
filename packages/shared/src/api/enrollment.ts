import { Type, type Static } from 'typebox';
import { Labels } from './common.js';

export const CreateEnrollmentTokenRequest = Type.Object({
  ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 24 * 3600, default: 3600 })),
  /** Labels every device enrolled with this token starts with. */
  labels: Type.Optional(Labels),
});
export type CreateEnrollmentTokenRequest = Static<typeof CreateEnrollmentTokenRequest>;

export const EnrollmentToken = Type.Object({
  token: Type.String(),
  expiresAt: Type.String(),
});
export type EnrollmentToken = Static<typeof EnrollmentToken>;

export const EnrollRequest = Type.Object({
  token: Type.String({ minLength: 1 }),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  labels: Type.Optional(Labels),
});
export type EnrollRequest = Static<typeof EnrollRequest>;

/** What an agent stores (mode 0600) after enrolling. */
export const EnrollResponse = Type.Object({
  deviceId: Type.String(),
  secret: Type.String(),
  hubPublicKey: Type.String(),
  brokerUrl: Type.String(),
  apiUrl: Type.String(),
  /**
   * PEM chain of the CA that signed the hub's TLS certificate, when the hub uses a private CA. The
   * agent pins it: HTTPS and MQTTS to the hub trust this CA and nothing else.
   */
  hubCaPem: Type.Optional(Type.String({ minLength: 1, maxLength: 64 * 1024 })),
});
export type EnrollResponse = Static<typeof EnrollResponse>;
