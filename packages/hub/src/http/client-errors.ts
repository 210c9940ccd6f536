import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { ERROR_CODES, type ErrorCode } from '@edgefleet/shared';

/** The `{error, code}` body and status of an answer made outside the route error handler. */
export interface EarlyAnswer {
  code: ErrorCode;
  error: string;
}

/** Longest path parameter the router matches, above the longest valid name (a model name, 128); a longer one is 414. */
export const MAX_PARAM_LENGTH = 200;

/** A request line starts with a method token and a space; only then does the packet show where the URI ends. */
const REQUEST_LINE_START = /^[A-Z]{3,10} /;

/**
 * Node gives one error, HPE_HEADER_OVERFLOW, for a too long request line and too many header
 * bytes alike. When the failing packet begins with the request line and that line alone passes
 * the limit, the URI is what was too long (414); otherwise the headers are (431).
 */
export function overflowAnswer(rawPacket: Buffer | undefined, limit = maxHeaderSize): EarlyAnswer {
  if (rawPacket && REQUEST_LINE_START.test(rawPacket.subarray(0, 11).toString('latin1'))) {
    const lineEnd = rawPacket.indexOf('\r\n');
    if (lineEnd === -1 || lineEnd >= limit) {
      return { code: 'URI_TOO_LONG', error: `the request URI is longer than the hub's ${limit}-byte limit for the request line and headers` };
    }
  }
  return { code: 'HEADERS_TOO_LARGE', error: `the request line and header fields exceed the hub's ${limit}-byte limit` };
}

/** An error of node's HTTP parser; `rawPacket` is the packet it failed on. */
export type ParserError = Error & { code?: string; rawPacket?: unknown };

/** What to answer for an error node's HTTP parser reports before a request exists. */
function clientErrorAnswer(err: ParserError): { status: number; answer: EarlyAnswer } {
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    const answer = overflowAnswer(Buffer.isBuffer(err.rawPacket) ? err.rawPacket : undefined);
    return { status: ERROR_CODES[answer.code], answer };
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return { status: 408, answer: { code: 'BAD_REQUEST', error: 'the request was not received completely in time' } };
  }
  return { status: 400, answer: { code: 'BAD_REQUEST', error: `malformed HTTP request (${err.code ?? err.message})` } };
}

/** Fastify's `frameworkErrors`: router failures that happen before any route or error handler runs. */
export function frameworkErrorAnswer(err: { code?: string; message: string }): { status: number; answer: EarlyAnswer } {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return { status: 414, answer: { code: 'URI_TOO_LONG', error: `a path segment is longer than ${MAX_PARAM_LENGTH} characters: no resource has such a name` } };
  }
  if (err.code === 'FST_ERR_BAD_URL') return { status: 400, answer: { code: 'BAD_REQUEST', error: 'the URL is not valid percent-encoding' } };
  return { status: 400, answer: { code: 'BAD_REQUEST', error: err.message } };
}

/**
 * Node's `clientError` event: answer in the API's shape and close. The socket may already be gone
 * (a reset), and a second request on the connection cannot be parsed after this, so it is closed.
 */
export function answerClientError(err: ParserError, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) {
    const { status, answer } = clientErrorAnswer(err);
    const body = JSON.stringify(answer);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
        `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
