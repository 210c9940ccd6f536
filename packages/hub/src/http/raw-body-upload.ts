import { BINARY_HEADER, EdgefleetError } from '@edgefleet/shared';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** Body limits, bytes: JSON and the binary tensor form (application/octet-stream). */
export interface RawBodyLimits {
  json: number;
  binary: number;
}

/** True when the request says it is the binary tensor form. */
export function isBinaryBody(req: FastifyRequest): boolean {
  return (req.headers['content-type'] ?? '').startsWith('application/octet-stream');
}

/**
 * Makes JSON and octet-stream bodies arrive as Buffers, each under its own limit. Call it inside an
 * encapsulated plugin holding only the upload route: it replaces the JSON parser, so registering it
 * beside other routes would change how they read JSON.
 */
export function acceptRawBodies(app: FastifyInstance, limits: RawBodyLimits): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: limits.json }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: limits.binary }, (_req, body, done) => done(null, body));
}

/**
 * An onRequest hook refusing a declared Content-Length over the limit of its form before the body is
 * read, with the message `tooLarge` gives (the parsers' own 413 names no limit).
 */
export function declaredLengthCheck(limits: RawBodyLimits, tooLarge: (length: number, limit: number, binary: boolean) => string) {
  return async (req: FastifyRequest): Promise<void> => {
    const binary = isBinaryBody(req);
    const limit = binary ? limits.binary : limits.json;
    const length = Number(req.headers['content-length']);
    if (length > limit) throw new EdgefleetError('PAYLOAD_TOO_LARGE', tooLarge(length, limit, binary));
  };
}

/**
 * The raw body and its binary header length, checked: a Buffer (another content type reached
 * Fastify's own parsers, so name the two this route reads), and the binary form carrying
 * Inference-Header-Content-Length. `what` names the body in messages ("a calibration body").
 */
export function rawUploadBody(req: FastifyRequest, what: string, typeHint = ''): { body: Buffer; binary: boolean; headerLength: string | undefined } {
  if (!Buffer.isBuffer(req.body)) {
    throw new EdgefleetError('BAD_REQUEST', `${what} is application/json or application/octet-stream${typeHint}, not ${req.headers['content-type'] ?? 'untyped'}`);
  }
  const binary = isBinaryBody(req);
  const raw = req.headers[BINARY_HEADER];
  const headerLength = typeof raw === 'string' ? raw : undefined;
  if (binary && headerLength === undefined) {
    throw new EdgefleetError('BAD_REQUEST', `a binary ${what.replace(/^an? /, '')} needs the ${BINARY_HEADER} header (the length of its JSON header); send JSON as application/json`);
  }
  return { body: req.body, binary, headerLength };
}
