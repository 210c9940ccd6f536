import { Option, type Command } from 'commander';
import type { DriftAlert, DriftOverview } from '@edgefleet/shared';
import { emit, table, type CommandContext } from '../format.js';

const score = (n: number | null): string => (n === null ? '-' : n.toFixed(2));

export function registerDrift(program: Command, ctx: CommandContext): void {
  const drift = program.command('drift').description('input drift of deployed versions');
  drift
    .command('list')
    .description('every version with a drift baseline: fleet score (over 1 is drift), alerts, devices over')
    .action(async () => {
      const client = await ctx.client();
      emit(ctx, await client.request<DriftOverview[]>('GET', '/drift'), (rows) =>
        table(
          ['MODEL', 'VERSION', 'BASELINE', 'FLEET SCORE', 'ALERTS', 'DEVICES OVER', 'EVALUATED'],
          rows.map((r) => [r.model, r.version, r.source, score(r.fleetScore), r.activeAlerts, r.devicesOver, r.lastEvaluatedAt]),
        ),
      );
    });
  program
    .command('alerts')
    .description('drift alerts, active first, newest first')
    .addOption(new Option('--state <state>', 'which alerts').choices(['active', 'cleared', 'all']).default('active'))
    .action(async (opts: { state: string }) => {
      const client = await ctx.client();
      emit(ctx, await client.request<DriftAlert[]>('GET', '/alerts', { query: { state: opts.state } }), (alerts) =>
        table(
          ['ID', 'MODEL', 'DEVICE', 'STATE', 'SCORE', 'RAISED', 'MESSAGE'],
          alerts.map((a) => [a.id, `${a.model}@${a.version}`, a.deviceId ?? 'fleet', a.state, score(a.score), a.raisedAt, a.message]),
        ),
      );
    });
}
