import { Option, type Command } from 'commander';
import { createLogUpdate } from 'log-update';
import { PROFILES, ROLLOUT_ACTIONS, type CreateRolloutRequest, type Profile, type Rollout, type RolloutState, type RolloutSummary, type RolloutTarget, type WaveSpec } from '@edgefleet/shared';
import { CliError } from '../api-client.js';
import { emit, parseLabels, rolloutStatus, rolloutTable, type CommandContext } from '../format.js';

/** States a watch stops at: done, or waiting on an operator (resume, rollback). */
const WATCH_STOPS: readonly RolloutState[] = ['succeeded', 'halted', 'paused', 'aborted', 'rolled-back'];
/** A watch that ends in one of these exits 1, so a script sees the rollout did not go through. */
const WATCH_FAILURES: readonly RolloutState[] = ['halted', 'aborted', 'rolled-back'];

/** `all` | `label k=v…` | `devices a,b` (also `labels`, `device`). */
export function parseTarget(words: readonly string[]): RolloutTarget {
  const [kind, ...rest] = words;
  if (kind === 'all' && rest.length === 0) return { all: true };
  if ((kind === 'label' || kind === 'labels') && rest.length > 0) return { labels: parseLabels(rest) };
  if ((kind === 'devices' || kind === 'device') && rest.length > 0) {
    const deviceIds = rest.flatMap((r) => r.split(',')).filter(Boolean);
    if (deviceIds.length > 0) return { deviceIds };
  }
  throw new CliError(`--target "${words.join(' ')}" is not one of: all | label key=value… | devices id1,id2`);
}

/** `10%,50%,100%` or `1,10,100%`: cumulative sizes, each wave baking `bakeSec`. */
export function parseWaves(text: string, bakeSec: number | undefined): WaveSpec[] {
  return text.split(',').map((part) => {
    const p = part.trim();
    const size = /^\d+$/.test(p) ? Number(p) : p;
    if (typeof size === 'string' && !p.endsWith('%')) throw new CliError(`wave size "${p}" is neither a device count nor a percentage like 10%`);
    return bakeSec === undefined ? { size } : { size, bakeSec };
  });
}

function wholeSeconds(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new CliError(`${flag} "${value}" is not a whole number of seconds`);
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

/** Polls the rollout and redraws its status until it stops; `--json` prints only the final document. */
async function watch(ctx: CommandContext, id: string, intervalMs: number): Promise<void> {
  const client = await ctx.client();
  const live = ctx.json() ? undefined : createLogUpdate(ctx.stdout, { showCursor: true });
  let r: Rollout;
  for (;;) {
    r = await client.request<Rollout>('GET', `/rollouts/${encodeURIComponent(id)}`);
    live?.(`${rolloutStatus(r)}\n${WATCH_STOPS.includes(r.state) ? '' : `watching every ${intervalMs / 1000}s (Ctrl-C stops watching, not the rollout)`}`);
    if (WATCH_STOPS.includes(r.state)) break;
    await ctx.sleep(intervalMs);
  }
  live?.done();
  if (ctx.json()) emit(ctx, r, rolloutStatus);
  if (WATCH_FAILURES.includes(r.state)) throw new CliError(`rollout ${r.id} ended ${r.state}${r.reason ? `: ${r.reason.message}` : ''}`);
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
    .option('-w, --watch', 'redraw until it succeeds, halts, pauses or ends (exit 1 when it halted, aborted or rolled back)')
    .option('--interval <seconds>', 'seconds between polls with --watch', '1')
    .action(async (id: string, opts: { watch?: boolean; interval: string }) => {
      if (opts.watch) {
        const seconds = Number(opts.interval);
        if (!(seconds > 0)) throw new CliError(`--interval "${opts.interval}" is not a positive number of seconds`);
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
