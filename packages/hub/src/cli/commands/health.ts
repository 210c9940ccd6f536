import type { Command } from 'commander';
import type { HubHealth } from '@edgefleet/shared';
import { countText, emit, fields, type CommandContext } from '../format.js';

export function registerHealth(program: Command, ctx: CommandContext): void {
  program
    .command('health')
    .description("the hub's status; with a token also connections, ingest counters, storage and event-loop lag")
    .action(async () => {
      const client = await ctx.client();
      emit(ctx, await client.request<HubHealth>('GET', '/health'), (h) =>
        fields([
          ['status', h.status],
          ['connections', h.connections],
          ['ingest', h.ingest ? Object.entries(h.ingest).map(([k, v]) => `${k} ${typeof v === 'object' ? `(${countText(v)})` : String(v)}`).join(', ') : undefined],
          ['storage errors', h.storage?.errorsSinceSuccess],
          ['last storage error', h.storage?.lastError],
          ['event-loop lag', h.eventLoopDelayMs ? `p50 ${h.eventLoopDelayMs.p50} ms, p99 ${h.eventLoopDelayMs.p99} ms, max ${h.eventLoopDelayMs.max} ms` : undefined],
        ]),
      );
    });
}
