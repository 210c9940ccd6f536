import { describe, expect, it } from 'vitest';
import { encodeMessage, type TelemetryMessage } from '@edgefleet/shared';
import type { RecordBody } from '../src/hub-link/hub-link.js';
import { gatherCapabilities } from '../src/telemetry/capabilities.js';
import { createSystemSampler } from '../src/telemetry/system-stats.js';
import { createTelemetry } from '../src/telemetry/telemetry.js';
import { createModelTable } from '../src/inference/model-table.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

const rss = (): number => process.memoryUsage.rss();

describe('telemetry', () => {
  it('samples the real system into a valid telemetry record', async () => {
    const dir = await tempDir('telemetry');
    const sampler = createSystemSampler({ stateDir: dir.path, rss });
    const first = await sampler.sample();
    const second = await sampler.sample();
    for (const s of [first, second]) {
      expect(s.memTotalMb).toBeGreaterThan(0);
      expect(s.memUsedMb).toBeGreaterThan(0);
      expect(s.agentRssMb).toBeGreaterThan(0);
      expect(s.cpuPercent).toBeGreaterThanOrEqual(0);
      expect(s.cpuPercent).toBeLessThanOrEqual(100);
      expect(s.diskUsedPercent).not.toBeNull();
    }
    const record: TelemetryMessage = { v: 1, seq: 1, ts: Date.now(), system: second, models: [] };
    expect(() => encodeMessage('telemetry', record)).not.toThrow();
    await dir.remove();
  });

  it('publishes on its interval until stopped', async () => {
    const dir = await tempDir('telemetry');
    const published: Array<RecordBody<'telemetry'>> = [];
    const telemetry = createTelemetry({ intervalMs: 100, stateDir: dir.path, table: createModelTable(), publish: (b) => published.push(b), rss, logger: silentLogger });
    telemetry.start();
    await eventually(() => published.length >= 3, 'three telemetry records');
    await telemetry.stop();
    await telemetry.stop();
    const count = published.length;
    await telemetry.tick();
    expect(published.length).toBe(count);
    await dir.remove();
  });

  it('waits in stop() for a sample in progress and publishes nothing once stopped', async () => {
    const dir = await tempDir('telemetry');
    const real = createSystemSampler({ stateDir: dir.path, rss });
    // The real sampler, held at the gate so that stop() is called while a tick is in progress.
    let sampling!: () => void;
    const started = new Promise<void>((resolve) => (sampling = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let sampled = 0;
    const sampler = {
      async sample() {
        sampling();
        await gate;
        const s = await real.sample();
        sampled++;
        return s;
      },
    };
    const published: Array<RecordBody<'telemetry'>> = [];
    const telemetry = createTelemetry({ intervalMs: 60_000, stateDir: dir.path, table: createModelTable(), publish: (b) => published.push(b), rss, sampler, logger: silentLogger });
    telemetry.start();
    await started;
    let stopped = false;
    const stopping = telemetry.stop().then(() => (stopped = true));
    await Promise.resolve();
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(sampled).toBe(1);
    expect(published).toEqual([]);
    await telemetry.tick();
    expect(published).toEqual([]);
    await dir.remove();
  });

  it('gathers capabilities that validate as a reported document', async () => {
    const capabilities = await gatherCapabilities({ executionProviders: [], agentVersion: '0.1.0' });
    expect(capabilities.executionProviders).toEqual(['cpu']);
    expect(capabilities.cores).toBeGreaterThanOrEqual(1);
    expect(() => encodeMessage('reported', { capabilities, models: [], desiredVersion: 0, ts: Date.now() })).not.toThrow();
  });
});
