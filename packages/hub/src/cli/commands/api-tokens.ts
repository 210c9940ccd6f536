import { Option, type Command } from 'commander';
import { OPERATOR_ROLES, type ApiTokenList, type CreatedApiToken, type OperatorRole } from '@edgefleet/shared';
import { UsageError } from '../api-client.js';
import { emit, fields, table, type CommandContext } from '../format.js';

/**
 * Operator API tokens (admin only): the ones fleetctl, scripts and the dashboard sign in with.
 * `tokens` is the enrollment tokens devices use; these are `api-tokens`.
 */
export function registerApiTokens(program: Command, ctx: CommandContext): void {
  const tokens = program.command('api-tokens').description('operator API tokens (admin): create, list, revoke');
  tokens
    .command('create')
    .description('a token for a person or a script; its secret is printed this once')
    .requiredOption('--name <name>', 'who or what holds it, e.g. ci@build-1')
    .addOption(new Option('--role <role>', 'what it may do').choices(OPERATOR_ROLES).default('operator'))
    .option('--ttl <seconds>', 'lifetime in seconds (default: until revoked)')
    .action(async (opts: { name: string; role: OperatorRole; ttl?: string }) => {
      const ttlSeconds = opts.ttl === undefined ? undefined : Number(opts.ttl);
      if (ttlSeconds !== undefined && !Number.isInteger(ttlSeconds)) throw new UsageError(`--ttl "${opts.ttl}" is not a whole number of seconds`);
      const client = await ctx.client();
      const created = await client.request<CreatedApiToken>('POST', '/tokens', { json: { name: opts.name, role: opts.role, ttlSeconds } });
      emit(ctx, created, (t) => fields([['id', t.id], ['name', t.name], ['role', t.role], ['expires', t.expiresAt ?? 'never'], ['token', t.token]]));
    });
  tokens
    .command('list')
    .description('tokens with their roles and expiry (never their secrets)')
    .action(async () => {
      const client = await ctx.client();
      emit(ctx, await client.request<ApiTokenList>('GET', '/tokens'), ({ tokens: list }) =>
        table(['ID', 'NAME', 'ROLE', 'CREATED', 'EXPIRES'], list.map((t) => [t.id, t.name, t.role, t.createdAt, t.expiresAt ?? 'never'])),
      );
    });
  tokens
    .command('revoke <id>')
    .description('revoke a token: requests with it are refused from now on')
    .action(async (id: string) => {
      const client = await ctx.client();
      // The hub answers 204 without a body: --json prints {"id", "revoked": true} so scripts still get a document.
      await client.request<null>('DELETE', `/tokens/${encodeURIComponent(id)}`);
      emit(ctx, { id, revoked: true }, () => `${id} revoked`);
    });
}
