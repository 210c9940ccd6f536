import { Option, type Command } from 'commander';
import type { DriftAlert, DriftModelView, DriftOverview } from '@edgefleet/shared';
import { emit, fields, table, type CommandContext } from '../format.js';

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
  drift
    .command('show <model> <version>')
    .description("one version's drift: baseline, latest fleet score, devices over, alerts")
    .action(async (model: string, version: string) => {
      const client = await ctx.client();
      const view = await client.request<DriftModelView>('GET', `/drift/${encodeURIComponent(model)}/${encodeURIComponent(version)}`);
      emit(ctx, view, (v) => {
        const latest = v.fleet.at(-1);
        return fields([
          ['version', `${v.model}@${v.version}`],
          ['baseline', v.baseline ? `${v.baseline.source}, ${v.baseline.samples} samples, ${v.baseline.createdAt}` : 'none'],
          ['fleet score', latest ? `${score(latest.score)}${latest.over ? ' (over)' : ''} at ${latest.windowEnd}` : null],
          ['devices over', `${v.devicesOver} of ${v.devicesEvaluated} evaluated`],
          ['pending samples', v.pendingSamples],
          ['active alerts', v.alerts.filter((a) => a.state === 'active').length],
        ]);
      });
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
