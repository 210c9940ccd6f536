import { createReadStream } from 'node:fs';
import { EdgefleetError } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requireDevice } from '../auth/device-basic-auth.js';
import type { ArtifactStore } from './artifact-store.js';

/**
 * Parses a single `bytes=` range against a file size: the range, 'unsatisfiable' (416), or null to
 * serve the whole file. RFC 9110 §14.2: a Range whose unit the server does not understand, or that is
 * not a valid byte-range set, is ignored (200 with the whole body); several ranges are answered whole
 * too. Only a valid range that misses the file is unsatisfiable.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/i.exec(header.trim());
  if (!m) return null;
  const [, a, b] = m as unknown as [string, string, string];
  if (a === '' && b === '') return null;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  if (b !== '' && Number(b) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: b === '' ? size - 1 : Math.min(Number(b), size - 1) };
}

export interface ArtifactRouteOptions {
  artifacts: ArtifactStore;
  verifyDevice: (id: string, secret: string) => boolean;
  /** Whether this device may have this artifact (artifact-access.ts). */
  mayDownload: (deviceId: string, sha256: string) => boolean;
}

/**
 * Artifact downloads for devices: HTTP Basic with the device id and secret, Range support. A device
 * gets only the artifacts assigned to it; any other digest answers 404 exactly like a missing one,
 * so a device cannot probe which models exist.
 */
export const artifactRoutes: FastifyPluginAsyncTypebox<ArtifactRouteOptions> = async (app, opts) => {
  app.get(
    '/api/v1/artifacts/:sha256',
    { schema: { params: Type.Object({ sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }) }) } },
    async (req, reply) => {
      const deviceId = requireDevice(req, opts.verifyDevice, 'download artifacts');
      const size = opts.mayDownload(deviceId, req.params.sha256) ? opts.artifacts.sizeOf(req.params.sha256) : undefined;
      if (size === undefined) {
        throw new EdgefleetError('NOT_FOUND', `artifact ${req.params.sha256} does not exist or is not assigned to device ${deviceId}`);
      }
      const path = opts.artifacts.pathOf(req.params.sha256);
      const range = parseRange(req.headers.range, size);
      reply.header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream').header('etag', `"${req.params.sha256}"`);
      if (range === 'unsatisfiable') {
        reply.header('content-range', `bytes */${size}`);
        throw new EdgefleetError('RANGE_NOT_SATISFIABLE', `range "${req.headers.range}" is outside the artifact's ${size} bytes`);
      }
      if (range === null) {
        reply.header('content-length', size);
        return reply.send(createReadStream(path));
      }
      reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`).header('content-length', range.end - range.start + 1);
      return reply.send(createReadStream(path, { start: range.start, end: range.end }));
    },
  );
};
