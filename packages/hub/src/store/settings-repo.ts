import type { Db } from './database.js';

/** SQL for the `settings` key/value table. */
export function createSettingsRepo(db: Db) {
  const read = db.prepare('SELECT value FROM settings WHERE key = ?').pluck();
  const write = db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
  return {
    get(key: string): string | undefined {
      return read.get(key) as string | undefined;
    },
    set(key: string, value: string): void {
      write.run(key, value);
    },
  };
}
export type SettingsRepo = ReturnType<typeof createSettingsRepo>;
