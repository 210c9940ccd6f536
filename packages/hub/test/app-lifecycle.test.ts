import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildHub, createHub } from '../src/app.js';
import { DEFAULT_CONFIG } from '../src/config.js';

function refused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('hub lifecycle', () => {
  it('stop() during start() waits for it and closes everything it brought up', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ef-hub-life-'));
    try {
      const hub = createHub(
        { ...DEFAULT_CONFIG, dataDir, host: '127.0.0.1', httpPort: 0, mqttPort: 0, adminToken: 'x'.repeat(43) },
        { log: pino({ level: 'silent' }) },
      );
      const started = hub.start();
      await hub.stop();
      await started;
      expect(hub.apiUrl).toMatch(/^http:/);
      expect(await refused(hub.apiUrl)).toBe(true);
      expect(await refused(hub.brokerUrl.replace(/^mqtt:/, 'http:'))).toBe(true);
      await hub.stop(); // safe twice
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('buildHub() answers inject() before start() and binds no port', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'ef-hub-build-'));
    try {
      const hub = await buildHub(
        { ...DEFAULT_CONFIG, dataDir, host: '127.0.0.1', httpPort: 0, mqttPort: 0, adminToken: 'y'.repeat(43) },
        { log: pino({ level: 'silent' }) },
      );
      const res = await hub.http.inject({ method: 'GET', url: '/api/v1/devices', headers: { authorization: `Bearer ${'y'.repeat(43)}` } });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ devices: [] });
      expect(hub.apiUrl).toBe('');
      expect(hub.http.server.listening).toBe(false);
      await hub.stop();
      await hub.stop(); // safe twice
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
