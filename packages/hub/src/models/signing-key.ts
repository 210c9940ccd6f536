import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { generateSigningKeyPair, type SigningKeyPair } from '@edgefleet/shared';
import type { Logger } from 'pino';

/** The hub's ed25519 manifest-signing key: created on first start, kept in the data dir (0600). */
export function loadOrCreateSigningKey(dataDir: string, log: Logger): SigningKeyPair {
  const file = join(dataDir, 'signing-key.pem');
  if (existsSync(file)) {
    const privateKeyPem = readFileSync(file, 'utf8');
    const publicKeyPem = createPublicKey(privateKeyPem).export({ format: 'pem', type: 'spki' }).toString();
    return { privateKeyPem, publicKeyPem };
  }
  const pair = generateSigningKeyPair();
  writeFileSync(file, pair.privateKeyPem, { mode: 0o600 });
  log.info({ file }, 'signing key created');
  return pair;
}
