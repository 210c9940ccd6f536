import { Option, type Command } from 'commander';
import { createLogUpdate } from 'log-update';
import { PROFILES, ROLLOUT_ACTIONS, type CreateRolloutRequest, type Profile, type Rollout, type RolloutState, type RolloutSummary, type RolloutTarget, type WaveSpec } from '@edgefleet/shared';
import { CliError, UsageError } from '../api-client.js';
import { printable } from '../terminal-text.js';
import { countText, emit, parseLabels, rolloutStatus, rolloutTable, type CommandContext } from '../format.js';

/** States a watch stops at: done, or waiting on an operator (resume, rollback). */
const WATCH_STOPS: readonly RolloutState[] = ['succeeded', 'halted', 'paused', 'aborted', 'rolled-back'];

/** `all` | `label k=v…` | `devices a,b` (also `labels`, `device`). */
export function parseTarget(words: readonly string[]): RolloutTarget {
  const [kind, ...rest] = words;
  if (kind === 'all' && rest.length === 0) return { all: true };
  if ((kind === 'label' || kind === 'labels') && rest.length > 0) return { labels: parseLabels(rest) };
  if ((kind === 'devices' || kind === 'device') && rest.length > 0) {
    const deviceIds = rest.flatMap((r) => r.split(',')).filter(Boolean);
    if (deviceIds.length > 0) return { deviceIds };
  }
  throw new UsageError(`--target "${words.join(' ')}" is not one of: all | label key=value… | devices id1,id2`);
}

/** `10%,50%,100%` or `1,10,100%`: cumulative sizes, each wave baking `bakeSec`. */
export function parseWaves(text: string, bakeSec: number | undefined): WaveSpec[] {
  return text.split(',').map((part) => {
    const p = part.trim();
    const size = /^\d+$/.test(p) ? Number(p) : p;
    if (typeof size === 'string' && !p.endsWith('%')) throw new UsageError(`wave size "${p}" is neither a device count nor a percentage like 10%`);
    return bakeSec === undefined ? { size } : { size, bakeSec };
  });
}

function wholeSeconds(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} "${value}" is not a whole number of seconds`);
  return n;
}

interface CreateOptions {
  model: string;
  version: string;
  target: string[];
  waves?: string;
  bakeSec?: string;
  autoRollback?: boolean;
  profile?: Profile;
}

/** One line for logs and CI: what changed is the state or a device count. */
export function progressLine(r: Rollout): string {
  const wave = r.waves.find((w) => w.state === 'running' || w.state === 'baking' || w.state === 'halted') ?? r.waves.at(-1);
  return `${r.id} ${r.state}${wave ? ` wave ${wave.index} ${wave.state}` : ''} devices ${countText(r.counts)}${r.reason ? ` (${r.reason.message})` : ''}`;
}

/**
 * Polls the rollout until it stops. On a terminal the status is redrawn in place (log-update);
 * elsewhere (CI, a pipe) one line is printed per change; `--json` prints only the final document.
 * Only `succeeded` exits 0, so `fleetctl rollouts status --watch <id> && next-step` goes on only
 * when every device took the version.
 */
async function watch(ctx: CommandContext, id: string, intervalMs: number): Promise<void> {
  const client = await ctx.client();
  // A terminal of no size (a pty nobody sized, as some CI runners allocate) would get nothing from log-update.
  const terminal = ctx.stdout.isTTY === true && (ctx.stdout.rows ?? 0) > 0;
  const live = !ctx.json() && terminal ? createLogUpdate(ctx.stdout, { showCursor: true }) : undefined;
  let lastLine = '';
  let r: Rollout;
  for (;;) {
    r = await client.request<Rollout>('GET', `/rollouts/${encodeURIComponent(id)}`);
    const stopped = WATCH_STOPS.includes(r.state);
    if (live) live(`${rolloutStatus(r)}\n${stopped ? '' : `watching every ${intervalMs / 1000}s (Ctrl-C stops watching, not the rollout)`}`);
    else if (!ctx.json() && printable(progressLine(r)) !== lastLine) {
      lastLine = printable(progressLine(r));
      ctx.write(`${lastLine}\n`);
    }
    if (stopped) break;
    await ctx.sleep(intervalMs);
  }
  live?.done();
  if (ctx.json()) emit(ctx, r, rolloutStatus);
  if (r.state !== 'succeeded') {
    const next = r.state === 'paused' ? ` (fleetctl rollouts resume ${r.id} goes on)` : r.state === 'halted' ? ` (resume, abort or rollback it)` : '';
    throw new CliError(`rollout ${r.id} ${r.state === 'paused' ? 'is paused' : `ended ${r.state}`}${r.reason ? `: ${printable(r.reason.message)}` : ''}${next}`);
  }
}

export function registerRollouts(program: Command, ctx: CommandContext): void {
  const rollouts = program.command('rollouts').description('staged rollouts of model versions');
  rollouts
    .command('create')
    .description('start a rollout (one wave of 100% unless --waves says otherwise)')
    .requiredOption('--model <name>', 'model name')
    .requiredOption('--version <version>', 'model version')
    .option('--target <target...>', 'all | label key=value… | devices id1,id2', ['all'])
    .option('--waves <sizes>', 'cumulative wave sizes, e.g. 10%,50%,100% or 1,100%')
    .option('--bake-sec <seconds>', "each wave's bake time before its metric gates are judged")
    .option('--auto-rollback', 'on a failed gate roll every device back instead of halting')
    .addOption(new Option('--profile <profile>', 'one compression profile for every device instead of its planned variant').choices(PROFILES))
    .action(async (opts: CreateOptions) => {
      const bakeSec = wholeSeconds('--bake-sec', opts.bakeSec);
      const body: CreateRolloutRequest = { model: opts.model, version: opts.version, target: parseTarget(opts.target) };
      if (opts.waves !== undefined) body.waves = parseWaves(opts.waves, bakeSec);
      else if (bakeSec !== undefined) body.waves = [{ size: '100%', bakeSec }];
      if (opts.autoRollback) body.autoRollback = true;
      if (opts.profile) body.profile = opts.profile;
      const client = await ctx.client();
      emit(ctx, await client.request<Rollout>('POST', '/rollouts', { json: body }), (r) => `created ${r.id}\n${rolloutStatus(r)}`);
    });
  rollouts
    .command('list')
    .description('rollouts, newest first')
    .option('--limit <n>', 'at most this many (the hub default: 50)')
    .action(async (opts: { limit?: string }) => {
      const client = await ctx.client();
      const res = await client.request<{ rollouts: RolloutSummary[] }>('GET', '/rollouts', { query: { limit: opts.limit } });
      emit(ctx, res, ({ rollouts: list }) => rolloutTable(list));
    });
  rollouts
    .command('status <id>')
    .description('one rollout: waves, gates, device counts by state')
    .option('-w, --watch', 'follow it until it succeeds (exit 0), halts, pauses, is aborted or rolled back (exit 1); redrawn on a terminal, one line per change otherwise')
    .option('--interval <seconds>', 'seconds between polls with --watch', '1')
    .action(async (id: string, opts: { watch?: boolean; interval: string }) => {
      if (opts.watch) {
        const seconds = Number(opts.interval);
        // Past ~24.8 days a timer overflows to 1 ms, which would poll the hub in a tight loop.
        if (!(seconds > 0 && seconds <= 3600)) throw new UsageError(`--interval "${opts.interval}" is not a number of seconds from 0 to 3600`);
        return watch(ctx, id, seconds * 1000);
      }
      const client = await ctx.client();
      emit(ctx, await client.request<Rollout>('GET', `/rollouts/${encodeURIComponent(id)}`), rolloutStatus);
    });
  for (const action of ROLLOUT_ACTIONS) {
    rollouts
      .command(`${action} <id>`)
      .description(`${action} a rollout (refused when its state does not allow it)`)
      .action(async (id: string) => {
        const client = await ctx.client();
        emit(ctx, await client.request<Rollout>('POST', `/rollouts/${encodeURIComponent(id)}/${action}`), (r) => `${r.id}: ${r.state}`);
      });
  }
}
