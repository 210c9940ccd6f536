import { createReadStream } from 'node:fs';
import { EdgefleetError } from '@edgefleet/shared';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { ArtifactStore } from './artifact-store.js';

/** Parses a single `bytes=` range against a file size; 'unsatisfiable', or null to serve the whole file. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return header.trim().startsWith('bytes=') && header.includes(',') ? null : 'unsatisfiable';
  const [, a, b] = m as unknown as [string, string, string];
  if (a === '' && b === '') return 'unsatisfiable';
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** Artifact downloads for devices: HTTP Basic with the device id and secret, Range support. */
export const artifactRoutes: FastifyPluginAsyncTypebox<{ artifacts: ArtifactStore; verifyDevice: (id: string, secret: string) => boolean }> = async (
  app,
  opts,
) => {
  function requireDevice(req: FastifyRequest): void {
    const header = req.headers.authorization;
    if (header?.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0 && opts.verifyDevice(decoded.slice(0, colon), decoded.slice(colon + 1))) return;
    }
    throw new EdgefleetError('UNAUTHORIZED', 'device credentials required: expected HTTP Basic with the device id and secret');
  }

  app.get(
    '/api/v1/artifacts/:sha256',
    { schema: { params: Type.Object({ sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }) }) } },
    async (req, reply) => {
      requireDevice(req);
      const size = opts.artifacts.sizeOf(req.params.sha256);
      if (size === undefined) throw new EdgefleetError('NOT_FOUND', `artifact ${req.params.sha256} does not exist`);
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
