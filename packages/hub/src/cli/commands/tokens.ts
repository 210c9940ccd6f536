import type { Command } from 'commander';
import type { EnrollmentToken } from '@edgefleet/shared';
import { UsageError } from '../api-client.js';
import { emit, fields, parseLabels, type CommandContext } from '../format.js';

export function registerTokens(program: Command, ctx: CommandContext): void {
  const tokens = program.command('tokens').description('enrollment tokens for new devices');
  tokens
    .command('create')
    .description('a token a device enrolls with (edgefleet-agent enroll --token …)')
    .option('--ttl <seconds>', 'lifetime in seconds (the hub default: 3600)')
    .option('--label <key=value...>', 'labels every device enrolled with it starts with')
    .action(async (opts: { ttl?: string; label?: string[] }) => {
      const ttlSeconds = opts.ttl === undefined ? undefined : Number(opts.ttl);
      if (ttlSeconds !== undefined && !Number.isInteger(ttlSeconds)) throw new UsageError(`--ttl "${opts.ttl}" is not a whole number of seconds`);
      const labels = opts.label ? parseLabels(opts.label) : undefined;
      const client = await ctx.client();
      const created = await client.request<EnrollmentToken>('POST', '/enrollment-tokens', { json: { ttlSeconds, labels } });
      emit(ctx, created, (t) => fields([['token', t.token], ['expires', t.expiresAt]]));
    });
}
