// Test fixture, run as its own process: stores telemetry records through the real agent store and
// hub link as fast as it can while the hub is unreachable (a long outage compressed), printing its
// progress as JSON lines until it is killed.
import { join } from 'node:path';
import { pino } from 'pino';
import { createHubLink } from '../../dist/hub-link/hub-link.js';
import { createAgentStore } from '../../dist/store/agent-store.js';

const [stateDir, brokerUrl, deviceId, secret] = process.argv.slice(2);
const logger = pino({ level: 'warn' });
const store = createAgentStore({ path: join(stateDir, 'agent.db'), logger });
store.start();
const link = createHubLink({
  brokerUrl,
  deviceId,
  secret,
  logger,
  outbox: store.outbox(),
  reported: () => ({
    capabilities: { arch: 'x64', platform: 'linux', cores: 1, memoryMb: 1, cpuModel: 'writer', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.0.0' },
    models: [],
    desiredVersion: 0,
    ts: Date.now(),
  }),
  onDesired: () => undefined,
  reconnect: { minMs: 50, maxMs: 200 },
});
link.start();
const system = { cpuPercent: 1, memUsedMb: 1, memTotalMb: 2, temperatureC: null, diskUsedPercent: 1, agentRssMb: 1, loadAvg1: 0 };
for (let i = 1; ; i++) {
  link.publishRecord('telemetry', { system, models: [] });
  if (i % 100 === 0) {
    process.stdout.write(`${JSON.stringify({ msg: 'stored', count: i, epoch: store.epoch(), ...link.stats() })}\n`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
