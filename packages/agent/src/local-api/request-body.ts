import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BINARY_HEADER, EdgefleetError } from '@edgefleet/shared';
import { BodyBuffer } from './body-buffer.js';
import type { BodyLimit } from './body-limit.js';

// Request bodies arrive as one Buffer of their own (body-buffer.ts), read under a limit each route may set per request (the infer
// routes size it from the model). A body over its limit is refused before it is held in memory:
// by its Content-Length before a byte is read, or as soon as the bytes read pass the limit.

const limits = new WeakMap<FastifyRequest, BodyLimit>();

/** Sets the limit for this request's body; call it from a hook that runs before parsing (preParsing). */
export function setBodyLimit(req: FastifyRequest, limit: BodyLimit): void {
  limits.set(req, limit);
}

function tooLarge(limit: BodyLimit, size: string): EdgefleetError {
  return new EdgefleetError('PAYLOAD_TOO_LARGE', `request body of ${size} is over the ${limit.bytes}-byte limit for ${limit.reason}`);
}

/** Every content type is read as raw bytes; the routes decide what the bytes are (JSON or binary tensors). */
export function registerBodyReader(app: FastifyInstance, fallback: BodyLimit): void {
  app.addContentTypeParser('*', (req, payload, done) => {
    const limit = limits.get(req) ?? fallback;
    const declared = Number(req.headers['content-length']);
    if (declared > limit.bytes) {
      done(tooLarge(limit, `${declared} bytes (Content-Length)`), undefined);
      return;
    }
    const headerValue = req.headers[BINARY_HEADER];
    const headerLength = typeof headerValue === 'string' && /^\d+$/.test(headerValue) ? Number(headerValue) : undefined;
    const body = new BodyBuffer(Number.isNaN(declared) ? undefined : declared, headerLength);
    let settled = false;
    const settle = (err: Error | null, result?: Buffer) => {
      if (settled) return;
      settled = true;
      if (err) body.discard();
      done(err, result);
    };
    // Once refused, later chunks are dropped unread rather than left to back up: Fastify closes the
    // connection after the error reply.
    payload.on('data', (chunk: Buffer) => {
      if (settled) return;
      if (body.received + chunk.byteLength > limit.bytes) settle(tooLarge(limit, `more than ${limit.bytes} bytes`));
      else if (!body.push(chunk)) settle(new EdgefleetError('BAD_REQUEST', `request body has more than the ${declared} bytes its Content-Length says`));
    });
    payload.on('error', (err) => settle(new EdgefleetError('BAD_REQUEST', `request body could not be read: ${err.message}`)));
    payload.on('end', () => {
      if (settled) return;
      if (!Number.isNaN(declared) && body.received !== declared) {
        settle(new EdgefleetError('BAD_REQUEST', `request body has ${body.received} bytes, its Content-Length says ${declared}`));
        return;
      }
      // Always a copy of its own: a view of the socket's read buffer must not outlive this request.
      settle(null, body.finish());
    });
  });
}
