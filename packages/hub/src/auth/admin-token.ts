import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { SettingsRepo } from '../store/settings-repo.js';
import { newSecret, secretMatches, sha256Hex } from './secret-digest.js';

const KEY = 'admin_token_sha256';
/** A configured token shorter than this may be guessable; generated ones have 43 random characters. */
const MIN_CONFIGURED_LENGTH = 32;

export interface AdminTokens {
  verify(token: string): boolean;
  /** The digest of the current admin token: sessions made from an earlier one no longer match it. */
  readonly sha256: string;
}

/**
 * Writes the token file whole or not at all: a temp file (0600) renamed over the old one. An old
 * file is left from a lost database; its token no longer verifies, so it must not survive.
 */
function writeTokenFile(file: string, token: string): void {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, `${token}\n`, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * A configured token replaces the stored one; otherwise the first start creates a token, stores
 * its hash and writes the token once to `<dataDir>/admin-token` (0600) and to the log.
 */
export function ensureAdminToken(settings: SettingsRepo, dataDir: string, configured: string | undefined, log: Logger): AdminTokens {
  if (configured) {
    if (configured.length < MIN_CONFIGURED_LENGTH) {
      log.warn(
        { length: configured.length, minimum: MIN_CONFIGURED_LENGTH },
        `EDGEFLEET_ADMIN_TOKEN is ${configured.length} characters long: a short token can be guessed (bad bearer tokens are only rate limited per address); use e.g. \`openssl rand -base64 32\``,
      );
    }
    settings.set(KEY, sha256Hex(configured));
  } else if (settings.get(KEY) === undefined) {
    const token = newSecret('admin');
    const file = join(dataDir, 'admin-token');
    writeTokenFile(file, token);
    settings.set(KEY, sha256Hex(token));
    log.warn({ adminToken: token, file }, 'admin token created');
  }
  const hash = settings.get(KEY)!;
  return { verify: (token) => secretMatches(token, hash), sha256: hash };
}
