import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Secrets (device secrets, admin, API and enrollment tokens, session ids) are 32 random bytes, so a
 * SHA-256 digest compared in constant time is enough: a slow password hash would only cost CPU in
 * reconnect storms and adds nothing against 256-bit secrets.
 */
export function sha256Hex(value: string | Uint8Array): string {
  return createHash('sha256').update(value).digest('hex');
}

/**
 * A prefix per kind: a secret found in a log or a paste says what it is, and it never starts with
 * `-`, which base64url can, and which command lines would read as an option (`--token -x…`).
 */
const SECRET_PREFIXES = { admin: 'efa_', api: 'eft_', enrollment: 'efe_', device: 'efd_', session: 'efs_' } as const;

export function newSecret(kind: keyof typeof SECRET_PREFIXES): string {
  return SECRET_PREFIXES[kind] + randomBytes(32).toString('base64url');
}

/** True when `secret` hashes to `expectedHex`; constant time in the digest comparison. */
export function secretMatches(secret: string | Uint8Array, expectedHex: string): boolean {
  const actual = createHash('sha256').update(secret).digest();
  const expected = Buffer.from(expectedHex, 'hex');
  return expected.length === actual.length && timingSafeEqual(actual, expected);
}
