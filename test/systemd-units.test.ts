import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/processes.js';
import { hasTool } from './support/tools.js';

const run = promisify(execFile);
const UNITS = ['edgefleet-agent.service', 'edgefleet-hub.service'];

describe.skipIf(!hasTool('systemd-analyze', 'systemd'))('systemd units', () => {
  it.each(UNITS)('%s passes systemd-analyze verify without a complaint', async (unit) => {
    const { stdout, stderr } = await run('systemd-analyze', ['verify', join(REPO_ROOT, 'deploy/systemd', unit)]);
    expect(`${stdout}${stderr}`.trim()).toBe('');
  });

  it('readies the agent the way main.ts does it: Type=notify, with systemd-notify sent from a child', async () => {
    const unit = await readFile(join(REPO_ROOT, 'deploy/systemd/edgefleet-agent.service'), 'utf8');
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^NotifyAccess=all$/m);
  });
});
