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
/** Control, format (zero-width, bidi overrides), private-use and unassigned characters, and line breaks: they show as nothing or reorder what follows. */
const INVISIBLE = /[\p{C}\p{Zl}\p{Zp}]/u;

/** Why a device name cannot be used, or undefined: names are shown beside ids, so none may pass for one. */
function nameProblem(name: string): string | undefined {
  if (INVISIBLE.test(name)) return `device name ${JSON.stringify(name)} holds a control or invisible character: use printable characters only`;
  if (name.trim() !== name) return `device name ${JSON.stringify(name)} starts or ends with white space`;
  if (DEVICE_ID_SHAPE.test(name)) return `device name "${name}" looks like a device id (dev-<hex>): choose a name that is not a device id`;
  return undefined;
}

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
      const problem = req.name === undefined ? undefined : nameProblem(req.name);
      if (problem) throw new EdgefleetError('BAD_REQUEST', problem);
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
