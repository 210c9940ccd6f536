import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { ModelVersion } from '@edgefleet/shared';
import { CliError, UsageError } from '../api-client.js';
import { emit, fields, table, type CommandContext } from '../format.js';

interface PushOptions {
  name: string;
  version: string;
  minAgreement?: string;
  maxAccuracyDrop?: string;
  maxRelativeError?: string;
}

/** A budget flag's number; the hub checks its range. */
function ratio(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} "${value}" is not a number`);
  return n;
}

const tensorsText = (ts: ModelVersion['inputs']): string => ts.map((t) => `${t.name} ${t.datatype}[${t.shape.join(',')}]`).join('; ');

function versionText(v: ModelVersion): string {
  return fields([
    ['model', `${v.name}@${v.version}`],
    ['uploaded', v.createdAt],
    ['sha256', v.sha256],
    ['size', `${v.size} bytes`],
    ['inputs', tensorsText(v.inputs)],
    ['outputs', tensorsText(v.outputs)],
    ['budget', v.budget ? Object.entries(v.budget).map(([k, n]) => `${k} ${n}`).join(', ') : 'default'],
  ]);
}

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
    .command('show <name> [version]')
    .description("a model's versions, newest first, or one version: hash, size, tensors, accuracy budget")
    .action(async (name: string, version: string | undefined) => {
      const client = await ctx.client();
      const path = `/models/${encodeURIComponent(name)}/versions`;
      if (version !== undefined) {
        emit(ctx, await client.request<ModelVersion>('GET', `${path}/${encodeURIComponent(version)}`), versionText);
        return;
      }
      emit(ctx, await client.request<{ versions: ModelVersion[] }>('GET', path), ({ versions }) =>
        table(
          ['VERSION', 'UPLOADED', 'SIZE', 'SHA256'],
          [...versions].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).map((v) => [v.version, v.createdAt, v.size, v.sha256.slice(0, 12)]),
        ),
      );
    });
  models
    .command('push <file>')
    .description('upload an ONNX file as a new version (checked and signed by the hub)')
    .requiredOption('--name <name>', 'model name')
    .requiredOption('--version <version>', 'version name, e.g. 1.0.0')
    .option('--min-agreement <ratio>', "accuracy budget: a variant's least top-1 agreement with fp32 (0..1)")
    .option('--max-accuracy-drop <ratio>', 'accuracy budget: most accuracy a variant may lose on labelled data (0..1)')
    .option('--max-relative-error <ratio>', 'accuracy budget: largest relative output error a variant may have')
    .action(async (file: string, opts: PushOptions) => {
      const budget = {
        minAgreement: ratio('--min-agreement', opts.minAgreement),
        maxAccuracyDrop: ratio('--max-accuracy-drop', opts.maxAccuracyDrop),
        maxRelativeError: ratio('--max-relative-error', opts.maxRelativeError),
      };
      let bytes: Uint8Array;
      try {
        bytes = await readFile(file);
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
      }
      const client = await ctx.client();
      const created = await client.request<ModelVersion>('POST', `/models/${encodeURIComponent(opts.name)}/versions`, { query: { version: opts.version, ...budget }, bytes });
      emit(ctx, created, versionText);
    });
}
