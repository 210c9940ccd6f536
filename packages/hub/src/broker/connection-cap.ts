import { readFileSync } from 'node:fs';

/** File descriptors kept free for SQLite, artifact reads, HTTP clients and logs. */
export const FD_HEADROOM = 256;
export const MIN_CONNECTIONS = 64;

/** The soft "Max open files" limit from /proc/self/limits text; undefined when absent or unlimited. */
export function softNofileLimit(limitsText: string): number | undefined {
  const line = limitsText.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (!soft || !/^\d+$/.test(soft)) return undefined;
  return Number(soft);
}

/**
 * The broker's connection cap: the configured one, lowered below the fd limit (minus headroom)
 * so that accepting one more device cannot end in EMFILE for the whole process.
 */
export function connectionCap(configured: number, limitsText: string | undefined): { cap: number; fdLimit: number | undefined } {
  const fdLimit = limitsText === undefined ? undefined : softNofileLimit(limitsText);
  if (fdLimit === undefined) return { cap: configured, fdLimit };
  return { cap: Math.min(configured, Math.max(MIN_CONNECTIONS, fdLimit - FD_HEADROOM)), fdLimit };
}

/** /proc/self/limits on Linux; undefined elsewhere or when unreadable (the configured cap then stands). */
export function readProcessLimits(): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
}
