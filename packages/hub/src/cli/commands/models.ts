import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { ModelVersion } from '@edgefleet/shared';
import { CliError } from '../api-client.js';
import { emit, fields, table, type CommandContext } from '../format.js';

interface ModelList {
  models: Array<{ name: string; versions: string[]; latest: string }>;
}

export function registerModels(program: Command, ctx: CommandContext): void {
  const models = program.command('models').description('model versions on the hub');
  models
    .command('list')
    .description('models with their versions')
    .action(async () => {
      const client = await ctx.client();
      emit(ctx, await client.request<ModelList>('GET', '/models'), ({ models: list }) =>
        table(['NAME', 'LATEST', 'VERSIONS'], list.map((m) => [m.name, m.latest, m.versions.join(', ')])),
      );
    });
  models
    .command('push <file>')
    .description('upload an ONNX file as a new version (checked and signed by the hub)')
    .requiredOption('--name <name>', 'model name')
    .requiredOption('--version <version>', 'version name, e.g. 1.0.0')
    .action(async (file: string, opts: { name: string; version: string }) => {
      let bytes: Uint8Array;
      try {
        bytes = await readFile(file);
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
      }
      const client = await ctx.client();
      const created = await client.request<ModelVersion>('POST', `/models/${encodeURIComponent(opts.name)}/versions`, { query: { version: opts.version }, bytes });
      emit(ctx, created, (v) =>
        fields([
          ['model', `${v.name}@${v.version}`],
          ['sha256', v.sha256],
          ['size', `${v.size} bytes`],
          ['inputs', v.inputs.map((t) => `${t.name} ${t.datatype}[${t.shape.join(',')}]`).join('; ')],
          ['outputs', v.outputs.map((t) => `${t.name} ${t.datatype}[${t.shape.join(',')}]`).join('; ')],
        ]),
      );
    });
}
