import { randomBytes } from 'node:crypto';
import { EdgefleetError, type EnrollRequest, type EnrollResponse, type EnrollmentToken, type Labels } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { newSecret, sha256Hex } from '../auth/secret-digest.js';
import type { DeviceRepo } from '../devices/device-repo.js';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { Db } from '../store/database.js';
import type { EnrollmentRepo } from './enrollment-repo.js';

export const DEFAULT_TOKEN_TTL_SECONDS = 3600;

/** Device ids are `dev-<hex>`; a name shaped like one would pass for another device in logs and the dashboard. */
const DEVICE_ID_SHAPE = /^dev-[0-9a-f]+$/i;

export interface EnrollmentEndpoints {
  apiUrl: string;
  brokerUrl: string;
  /** The private CA the device pins for HTTPS and MQTTS, when the hub has one. */
  hubCaPem?: string | undefined;
}

export function createEnrollmentService(deps: {
  db: Db;
  tokens: EnrollmentRepo;
  devices: DeviceRepo;
  bus: HubEventBus;
  hubPublicKey: string;
  log: Logger;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  return {
    createToken(ttlSeconds = DEFAULT_TOKEN_TTL_SECONDS, labels: Labels = {}): EnrollmentToken {
      const token = newSecret('enrollment');
      const created = now();
      const expiresAt = created + ttlSeconds * 1000;
      deps.tokens.insert(sha256Hex(token), labels, new Date(created), expiresAt);
      return { token, expiresAt: new Date(expiresAt).toISOString() };
    },
    /** Claims the token and creates the device in one transaction; an unknown, used or expired token is TOKEN_INVALID. */
    enroll(req: EnrollRequest, endpoints: EnrollmentEndpoints): EnrollResponse {
      if (req.name !== undefined && (DEVICE_ID_SHAPE.test(req.name) || deps.devices.credentials(req.name) !== undefined)) {
        throw new EdgefleetError('BAD_REQUEST', `device name "${req.name}" looks like a device id (dev-<hex>): choose a name that is not a device id`);
      }
      const deviceId = `dev-${randomBytes(6).toString('hex')}`;
      const secret = newSecret('device');
      deps.db.transaction(() => {
        const at = now();
        const tokenLabels = deps.tokens.claim(sha256Hex(req.token), deviceId, at);
        if (!tokenLabels) throw new EdgefleetError('TOKEN_INVALID', 'enrollment token is unknown, already used or expired: ask the operator for a new one');
        deps.devices.insert({
          id: deviceId,
          name: req.name ?? deviceId,
          // The operator's token labels win over what the device asks for.
          labels: { ...req.labels, ...tokenLabels },
          secretSha256: sha256Hex(secret),
          enrolledAt: new Date(at).toISOString(),
        });
      })();
      deps.log.info({ deviceId, name: req.name }, 'device enrolled');
      deps.bus.emit('device', { deviceId, change: 'enrolled' });
      return {
        deviceId,
        secret,
        hubPublicKey: deps.hubPublicKey,
        brokerUrl: endpoints.brokerUrl,
        apiUrl: endpoints.apiUrl,
        ...(endpoints.hubCaPem ? { hubCaPem: endpoints.hubCaPem } : {}),
      };
    },
  };
}
export type EnrollmentService = ReturnType<typeof createEnrollmentService>;
