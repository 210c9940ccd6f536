import { vi } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';

export async function tempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `ef-agent-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export const silentLogger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** vitest's waitUntil (polls until truthy), naming what was awaited when it times out. */
export function eventually<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<Exclude<T, false | null | undefined>> {
  return vi.waitUntil(check, { timeout: timeoutMs, interval: 20 }).then(
    (value) => value as Exclude<T, false | null | undefined>,
    (err: Error) => {
      throw new Error(`waiting for ${what}: ${err.message}`);
    },
  );
}
