import { EdgefleetError } from '@edgefleet/shared';
import type { FastifyRequest } from 'fastify';

/**
 * The device behind a request's HTTP Basic credentials (device id and secret), for the routes only
 * devices call (artifact downloads, field-sample uploads). Nothing else answers: no credentials or
 * wrong ones are a 401; an operator's bearer token is a 403 — a valid caller, but not a device.
 */
export function requireDevice(req: FastifyRequest, verify: (id: string, secret: string) => boolean, what: string): string {
  const header = req.headers.authorization;
  if (header?.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const id = decoded.slice(0, colon);
    if (colon > 0 && verify(id, decoded.slice(colon + 1))) return id;
  }
  if (header?.startsWith('Bearer ')) throw new EdgefleetError('FORBIDDEN', `operator tokens cannot ${what}: only devices do, with HTTP Basic and their device id and secret`);
  throw new EdgefleetError('UNAUTHORIZED', 'device credentials required: expected HTTP Basic with the device id and secret');
}
