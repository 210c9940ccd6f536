import Table from 'cli-table3';
import type { Rollout, RolloutSummary } from '@edgefleet/shared';
import { rawJsonOf, UsageError, type ApiClient } from './api-client.js';
import { printable } from './terminal-text.js';

/** What every command gets from the entry: the client (built on first use), the output mode and the streams. */
export interface CommandContext {
  client(): Promise<ApiClient>;
  json(): boolean;
  write(text: string): void;
  /** The terminal stream for live views (log-update redraws on it). */
  stdout: NodeJS.WritableStream & { isTTY?: boolean; rows?: number };
  sleep(ms: number): Promise<void>;
}

/**
 * `--json` prints the hub's JSON text as it came (one document, no number rounded by a parse);
 * otherwise the human rendering, with any control character from the hub shown escaped.
 */
export function emit<T>(ctx: CommandContext, data: T, human: (data: T) => string): void {
  if (ctx.json()) ctx.write(`${rawJsonOf(data) ?? JSON.stringify(data)}\n`);
  else ctx.write(`${human(data).split('\n').map(printable).join('\n')}\n`);
}

export function table(head: string[], rows: Array<Array<string | number | boolean | null | undefined>>): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const row of rows) t.push(row.map((c) => (c === null || c === undefined ? '-' : printable(String(c)))));
  return t.toString();
}

/** `key: value` lines, aligned. */
export function fields(pairs: Array<[string, string | number | boolean | null | undefined]>): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v === null || v === undefined ? '-' : printable(String(v))}`).join('\n');
}

export const labelText = (labels: Record<string, string>): string =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/** Counts by state, largest first: `active 3, downloading 1`. */
export const countText = (counts: Record<string, number>): string =>
  Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([state, n]) => `${state} ${n}`)
    .join(', ') || '-';

export function targetText(target: RolloutSummary['target']): string {
  if ('all' in target) return 'all';
  if ('labels' in target) return `labels ${labelText(target.labels)}`;
  return `devices ${target.deviceIds.join(',')}`;
}

export function rolloutTable(rollouts: RolloutSummary[]): string {
  return table(
    ['ID', 'MODEL', 'VERSION', 'STATE', 'TARGET', 'DEVICES', 'CREATED'],
    rollouts.map((r) => [r.id, r.model, r.version, r.state, targetText(r.target), countText(r.counts), r.createdAt]),
  );
}

/** One rollout: its state and reason, each wave with its gates, and device counts by state. */
export function rolloutStatus(r: Rollout): string {
  const head = fields([
    ['rollout', r.id],
    ['model', `${r.model}@${r.version}`],
    ['target', targetText(r.target)],
    ['state', r.state],
    ['reason', r.reason ? `wave ${r.reason.wave}${r.reason.gate ? ` gate ${r.reason.gate}` : ''}: ${r.reason.message}` : null],
    ['devices', countText(r.counts)],
  ]);
  const waves = table(
    ['WAVE', 'SIZE', 'STATE', 'BAKE', 'DEVICES', 'GATES'],
    r.waves.map((w) => [
      w.index,
      w.spec.size,
      w.state,
      w.spec.bakeSec ? `${w.spec.bakeSec}s${w.bakeUntil && w.state === 'baking' ? ` until ${w.bakeUntil}` : ''}` : '-',
      countText(w.counts),
      w.gates.map((g) => `${g.gate} ${g.status}`).join(', ') || '-',
    ]),
  );
  return `${head}\n${waves}`;
}

/** `k=v` arguments as labels (the text form `labelText` prints); the hub checks key and value shapes. */
export function parseLabels(args: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new UsageError(`label "${arg}" is not key=value`);
    labels[arg.slice(0, eq)] = arg.slice(eq + 1);
  }
  return labels;
}
