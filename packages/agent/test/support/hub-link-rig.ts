import type { ReportedMessage } from '@edgefleet/shared';
import { createHubLink, type HubLink, type HubLinkOptions } from '../../src/hub-link/hub-link.js';
import type { RecordOutbox } from '../../src/store/outbox-store.js';
import { silentLogger } from './temp.js';

/** What an agent with no models installed reports. */
export const bareReported: ReportedMessage = {
  capabilities: { arch: 'x64', platform: 'linux', cores: 2, memoryMb: 1024, cpuModel: 'test', cpuFlags: [], executionProviders: ['cpu'], accelerators: [], agentVersion: '0.1.0' },
  models: [],
  desiredVersion: 0,
  ts: 1,
};

export interface TestLinkTarget {
  brokerUrl: string;
  deviceId: string;
  secret: string;
  outbox: RecordOutbox;
}

/** A hub link (not started) reporting bareReported and ignoring desired; `extra` overrides any option. */
export function createTestHubLink(target: TestLinkTarget, extra: Partial<HubLinkOptions> = {}): HubLink {
  return createHubLink({
    ...target,
    logger: silentLogger,
    reported: () => bareReported,
    onDesired: () => undefined,
    ...extra,
  });
}
