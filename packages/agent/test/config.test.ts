import { describe, expect, it } from 'vitest';
import { parseCommand } from '../src/config.js';

describe('agent config', () => {
  it('uses defaults, then env, then flags', () => {
    const d = parseCommand(['run'], {});
    expect(d).toMatchObject({ command: 'run', config: { stateDir: '/var/lib/edgefleet', socketPath: '/run/edgefleet/agent.sock', telemetryIntervalMs: 10_000, logLevel: 'info' } });
    expect(d.command === 'run' && d.config.tcpPort).toBeUndefined();

    const env = { EDGEFLEET_AGENT_STATE_DIR: '/env/state', EDGEFLEET_AGENT_SOCKET: '/env/sock', EDGEFLEET_AGENT_TCP_PORT: '9000', EDGEFLEET_TELEMETRY_INTERVAL_MS: '300', EDGEFLEET_LOG_LEVEL: 'warn' };
    expect(parseCommand(['run'], env)).toMatchObject({ config: { stateDir: '/env/state', socketPath: '/env/sock', tcpPort: 9000, telemetryIntervalMs: 300, logLevel: 'warn' } });
    expect(parseCommand(['run', '--state-dir', '/flag/state', '--socket', '/flag/sock'], env)).toMatchObject({ config: { stateDir: '/flag/state', socketPath: '/flag/sock' } });
  });

  it('passes worker pool sizes through only when given', () => {
    const d = parseCommand(['run'], {});
    expect(d.command === 'run' && [d.config.workers, d.config.threads]).toEqual([undefined, undefined]);
    expect(parseCommand(['run'], { EDGEFLEET_AGENT_WORKERS: '3' })).toMatchObject({ config: { workers: 3 } });
    expect(parseCommand(['run', '--workers', '1', '--threads', '2'], {})).toMatchObject({ config: { workers: 1, threads: 2 } });
  });

  it('parses enroll with repeated labels', () => {
    expect(parseCommand(['enroll', '--hub', 'http://hub:8080/', '--token', 't', '--name', 'n', '--label', 'site=a', '--label', 'tier=edge'], {})).toEqual({
      command: 'enroll',
      config: { hubUrl: 'http://hub:8080', token: 't', name: 'n', labels: { site: 'a', tier: 'edge' }, stateDir: '/var/lib/edgefleet', timeoutMs: 30_000, logLevel: 'info' },
    });
    expect(parseCommand(['enroll', '--hub', 'http://h', '--token', 't', '--timeout', '2.5'], {})).toMatchObject({ config: { timeoutMs: 2500 } });
    expect(() => parseCommand(['enroll', '--hub', 'http://h', '--token', 't', '--timeout', 'never'], {})).toThrow(/--timeout is "never", expected a number of seconds/);
  });

  it('names what is wrong', () => {
    expect(() => parseCommand(['enroll', '--token', 't'], {})).toThrow(/--hub/);
    // A URL to the parser ("hub.local:" would be its scheme), not one fetch can use.
    expect(() => parseCommand(['enroll', '--hub', 'hub.local:8080', '--token', 't'], {})).toThrow(
      '--hub is "hub.local:8080", expected the hub\'s API URL such as http://hub.local:8080',
    );
    expect(() => parseCommand(['enroll', '--hub', 'http://h', '--token', 't', '--label', 'nokey'], {})).toThrow(/key=value/);
    expect(() => parseCommand(['enroll', '--hub', 'http://h', '--token', 't', '--label', 'bad key=x'], {})).toThrow(/label "bad key=x" is not key=value/);
    expect(() => parseCommand(['enroll', '--hub', 'http://h', '--token', 't', '--label', `${'k'.repeat(64)}=x`], {})).toThrow(/1-63/);
    expect(() => parseCommand(['enroll', '--hub', 'http://h', '--token', 't', '--label', `k=${'v'.repeat(256)}`], {})).toThrow(/at most 255/);
    expect(parseCommand(['enroll', '--hub', 'http://h', '--token', 't', '--label', 'k=a=b', '--label', 'e='], {})).toMatchObject({ config: { labels: { k: 'a=b', e: '' } } });
    expect(() => parseCommand(['run', '--bogus'], {})).toThrow(/bogus/);
    expect(() => parseCommand(['run'], { EDGEFLEET_TELEMETRY_INTERVAL_MS: 'soon' })).toThrow(/EDGEFLEET_TELEMETRY_INTERVAL_MS is "soon"/);
    expect(() => parseCommand(['fly'], {})).toThrow(/unknown command "fly"/);
  });
});
