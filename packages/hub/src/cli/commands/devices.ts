import type { Command } from 'commander';
import type { Device } from '@edgefleet/shared';
import { emit, fields, labelText, parseLabels, table, type CommandContext } from '../format.js';

const modelsText = (d: Device): string => d.models.map((m) => `${m.name}@${m.version}${m.active ? '*' : ''}`).join(', ') || '-';

function deviceText(d: Device): string {
  const system = d.telemetry?.system;
  return fields([
    ['id', d.id],
    ['name', d.name],
    ['labels', labelText(d.labels) || '-'],
    ['online', d.online],
    ['revoked', d.revoked],
    ['enrolled', d.enrolledAt],
    ['last seen', d.lastSeen],
    ['platform', d.capabilities ? `${d.capabilities.platform}/${d.capabilities.arch}, ${d.capabilities.cores} cores, ${d.capabilities.memoryMb} MB` : null],
    ['models', modelsText(d)],
    ['cpu', system ? `${system.cpuPercent}%` : null],
    ['memory', system ? `${system.memUsedMb}/${system.memTotalMb} MB` : null],
    ['error', d.error],
  ]);
}

/** `key=value` sets a label, `key-` removes it; the rest of the device's labels stay. */
export function applyLabelEdits(current: Record<string, string>, edits: readonly string[]): Record<string, string> {
  const next = { ...current };
  const sets: string[] = [];
  for (const edit of edits) {
    if (!edit.includes('=') && edit.endsWith('-') && edit.length > 1) delete next[edit.slice(0, -1)];
    else sets.push(edit);
  }
  return { ...next, ...parseLabels(sets) };
}

export function registerDevices(program: Command, ctx: CommandContext): void {
  const devices = program.command('devices').description('enrolled devices');
  devices
    .command('list')
    .description('devices, with label filters')
    .option('-l, --label <key=value...>', 'only devices with these labels')
    .option('--online', 'only devices connected now')
    .action(async (opts: { label?: string[]; online?: boolean }) => {
      const client = await ctx.client();
      const labels = Object.entries(parseLabels(opts.label ?? [])).map(([k, v]) => `${k}=${v}`);
      const url = new URLSearchParams(labels.map((l): [string, string] => ['label', l]));
      if (opts.online) url.set('online', 'true');
      const query = url.toString();
      const res = await client.request<{ devices: Device[] }>('GET', `/devices${query ? `?${query}` : ''}`);
      emit(ctx, res, ({ devices: list }) =>
        table(
          ['ID', 'NAME', 'ONLINE', 'LABELS', 'MODELS', 'LAST SEEN'],
          list.map((d) => [d.id, d.name, d.revoked ? 'revoked' : d.online ? 'yes' : 'no', labelText(d.labels), modelsText(d), d.lastSeen]),
        ),
      );
    });
  devices
    .command('show <id>')
    .description('one device: labels, capabilities, models, latest telemetry')
    .action(async (id: string) => {
      const client = await ctx.client();
      emit(ctx, await client.request<Device>('GET', `/devices/${encodeURIComponent(id)}`), deviceText);
    });
  devices
    .command('label <id> <edits...>')
    .description('set labels (key=value) or remove them (key-); other labels are kept')
    .action(async (id: string, edits: string[]) => {
      const client = await ctx.client();
      const path = `/devices/${encodeURIComponent(id)}`;
      const current = await client.request<Device>('GET', path);
      const labels = applyLabelEdits(current.labels, edits);
      emit(ctx, await client.request<Device>('PUT', `${path}/labels`, { json: { labels } }), (d) => `${d.id}: ${labelText(d.labels) || 'no labels'}`);
    });
  devices
    .command('revoke <id>')
    .description('revoke a device: its credentials stop working and its connection closes')
    .action(async (id: string) => {
      const client = await ctx.client();
      emit(ctx, await client.request<Device>('POST', `/devices/${encodeURIComponent(id)}/revoke`, { json: {} }), (d) => `${d.id} revoked`);
    });
  devices
    .command('restore <id>')
    .description('undo a revoke: the device may connect again with its own credentials')
    .action(async (id: string) => {
      const client = await ctx.client();
      emit(ctx, await client.request<Device>('POST', `/devices/${encodeURIComponent(id)}/restore`, { json: {} }), (d) => `${d.id} restored`);
    });
}
