import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Db } from '../store/database.js';
import { newSecret, secretMatches, sha256Hex } from './secret-digest.js';

const KEY = 'admin_token_sha256';

export interface AdminTokens {
  verify(token: string): boolean;
}

/**
 * A configured token replaces the stored one; otherwise the first start creates a token, stores
 * its hash and writes the token once to `<dataDir>/admin-token` (0600) and to the log.
 */
export function ensureAdminToken(db: Db, dataDir: string, configured: string | undefined, log: Logger): AdminTokens {
  const read = db.prepare('SELECT value FROM settings WHERE key = ?').pluck();
  const write = db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
  if (configured) {
    write.run(KEY, sha256Hex(configured));
  } else if (read.get(KEY) === undefined) {
    const token = newSecret();
    write.run(KEY, sha256Hex(token));
    const file = join(dataDir, 'admin-token');
    if (!existsSync(file)) writeFileSync(file, `${token}\n`, { mode: 0o600 });
    log.warn({ adminToken: token, file }, 'admin token created');
  }
  const hash = read.get(KEY) as string;
  return { verify: (token) => secretMatches(token, hash) };
}
