import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, open, readFile, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buildMlp } from '@edgefleet/shared/onnx';
import { afterAll, describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/** The environment of a hub on loopback, ephemeral ports, keeping its state in `dataDir`. */
function hubEnv(dataDir: string, extraEnv: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, EDGEFLEET_HUB_DATA_DIR: dataDir, EDGEFLEET_HUB_HOST: '127.0.0.1', EDGEFLEET_HUB_HTTP_PORT: '0', EDGEFLEET_HUB_MQTT_PORT: '0', ...extraEnv };
}

describe('hub process', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('logs "hub ready" with the actual URLs, creates an admin token, and exits 0 on SIGTERM', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ef-hub-main-'));
    dirs.push(dataDir);
    const env = hubEnv(dataDir);
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

  /** Runs the hub until it logs "hub ready" (then stops it) or exits on its own; the log lines and exit code. */
  async function runHub(dataDir: string, extraEnv: NodeJS.ProcessEnv = {}) {
    const env = hubEnv(dataDir, extraEnv);
    delete env.EDGEFLEET_ADMIN_TOKEN;
    if (!('EDGEFLEET_HUB_ALLOW_EMPTY_DB' in extraEnv)) delete env.EDGEFLEET_HUB_ALLOW_EMPTY_DB;
    const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(child, 'exit');
    const lines: Array<Record<string, unknown>> = [];
    let ready = false;
    for await (const line of createInterface({ input: child.stdout })) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      lines.push(parsed);
      if (parsed.msg === 'hub ready') {
        ready = true;
        child.kill('SIGTERM');
      }
    }
    const [code] = (await exited) as [number | null];
    return { ready, code, lines };
  }

  it('refuses to start on an empty hub.db beside an earlier signing key, naming the file; starts with EDGEFLEET_HUB_ALLOW_EMPTY_DB=1', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ef-hub-main-'));
    dirs.push(dataDir);
    expect((await runHub(dataDir)).ready).toBe(true);
    for (const suffix of ['-wal', '-shm']) await rm(join(dataDir, `hub.db${suffix}`), { force: true });
    await truncate(join(dataDir, 'hub.db'), 0);

    const refused = await runHub(dataDir);
    expect(refused.ready).toBe(false);
    expect(refused.code).toBe(1);
    const fatal = refused.lines.find((l) => l.level === 60)!;
    expect(fatal.code).toBe('STORAGE_ERROR');
    expect(fatal.msg).toContain(`hub failed to start: hub database ${join(dataDir, 'hub.db')} is empty (0 bytes)`);
    expect(fatal.msg).toContain('signing-key.pem');
    expect(fatal.msg).toContain('EDGEFLEET_HUB_ALLOW_EMPTY_DB=1');
    expect((await stat(join(dataDir, 'hub.db'))).size).toBe(0);

    const allowed = await runHub(dataDir, { EDGEFLEET_HUB_ALLOW_EMPTY_DB: '1' });
    expect(allowed.ready).toBe(true);
    expect(allowed.code).toBe(0);
  });

  it('refuses to start on a damaged hub.db, naming the file', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ef-hub-main-'));
    dirs.push(dataDir);
    expect((await runHub(dataDir)).ready).toBe(true);
    // Garbage over every page after the first: the file header survives, the b-trees do not.
    const file = join(dataDir, 'hub.db');
    const size = (await stat(file)).size;
    expect(size).toBeGreaterThan(4096);
    const fd = await open(file, 'r+');
    try {
      await fd.write(Buffer.alloc(size - 4096, 0xa5), 0, size - 4096, 4096);
    } finally {
      await fd.close();
    }

    const refused = await runHub(dataDir);
    expect(refused.ready).toBe(false);
    expect(refused.code).toBe(1);
    const fatal = refused.lines.find((l) => l.level === 60)!;
    expect(fatal.code).toBe('STORAGE_ERROR');
    expect(fatal.msg).toMatch(new RegExp(`^hub failed to start: hub database ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} (is damaged|cannot be opened)`));
  });
});

/** Protobuf length-delimited field: tag, length, payload. */
function ldField(field: number, payload: Buffer): Buffer {
  const varint = (n: number) => {
    const out: number[] = [];
    for (; n > 127; n = Math.floor(n / 128)) out.push((n & 127) | 128);
    out.push(n);
    return Buffer.from(out);
  };
  return Buffer.concat([varint((field << 3) | 2), varint(payload.length), payload]);
}

describe('hub process under a model upload that expands when decoded', () => {
  it('keeps running when a 6 MB upload would decode to hundreds of MB of heap (packed int64_data of zeros)', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ef-hub-main-'));
    const env = hubEnv(dataDir, { EDGEFLEET_ADMIN_TOKEN: 'efa_decode-bomb-test-admin-token-000000000001' });
    // A small main heap, so that decoding on the main thread would end the process (~38 bytes of heap per byte here).
    const child = spawn(process.execPath, ['--max-old-space-size=96', MAIN], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(child, 'exit');
    try {
      let apiUrl = '';
      for await (const line of createInterface({ input: child.stdout })) {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed.msg === 'hub ready') {
          apiUrl = String(parsed.apiUrl);
          break;
        }
      }
      child.stdout.resume();
      // A valid model followed by a merged graph field: initializer { int64_data: 6M zero varints }.
      const bomb = Buffer.concat([Buffer.from(buildMlp({ inputSize: 4, hidden: [4], outputSize: 2 })), ldField(7, ldField(5, ldField(7, Buffer.alloc(6_000_000))))]);
      const headers = { authorization: `Bearer ${env.EDGEFLEET_ADMIN_TOKEN}`, 'content-type': 'application/octet-stream' };
      const res = await fetch(`${apiUrl}/api/v1/models/bomb/versions?version=1`, { method: 'POST', headers, body: bomb });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('INVALID_MODEL');
      expect((await fetch(`${apiUrl}/api/v1/health`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await exited;
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
