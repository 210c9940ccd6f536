import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('hub process', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('logs "hub ready" with the actual URLs, creates an admin token, and exits 0 on SIGTERM', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ef-hub-main-'));
    dirs.push(dataDir);
    const env: NodeJS.ProcessEnv = { ...process.env, EDGEFLEET_HUB_DATA_DIR: dataDir, EDGEFLEET_HUB_HOST: '127.0.0.1', EDGEFLEET_HUB_HTTP_PORT: '0', EDGEFLEET_HUB_MQTT_PORT: '0' };
    delete env.EDGEFLEET_ADMIN_TOKEN;
    const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(child, 'exit');
    const lines: Array<Record<string, unknown>> = [];
    let ready: Record<string, unknown> | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      lines.push(parsed);
      if (parsed.msg === 'hub ready') {
        ready = parsed;
        break;
      }
    }
    expect(ready!.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(ready!.brokerUrl).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    const token = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
    expect((await stat(join(dataDir, 'admin-token'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dataDir, 'signing-key.pem'))).mode & 0o777).toBe(0o600);
    expect(lines.some((l) => l.msg === 'admin token created' && l.adminToken === token)).toBe(true);
    const res = await fetch(`${String(ready!.apiUrl)}/api/v1/devices`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);

    child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
  });
});
