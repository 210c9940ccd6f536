import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY_HEADER, joinBinaryBody } from '@edgefleet/shared';
import { encodeModel, GraphBuilder } from '@edgefleet/shared/onnx';
import type { Tensor } from '../src/inference/types.js';
import { BodyBuffer, bodyPadding, EAGER_MAX, ownsItsBuffer, TENSOR_ALIGNMENT } from '../src/local-api/body-buffer.js';
import { startLocalApiRig, type LocalApiRig } from './support/local-api-rig.js';
import { rawRequest } from './support/raw-http.js';

// The body reader puts each body in a buffer of its own, at an offset that leaves the tensor data after
// the binary header aligned: the inputs are viewed in place and the buffer moves to the worker as is.

const N = 1000; // FP64 [1, N]: 8 KB of tensor data

/** w = v + v over FP64 [1, N]: 8-byte elements, the strictest alignment. */
function doubleModel(): Uint8Array {
  const g = new GraphBuilder('double');
  const v = g.input('v', 'FP64', [1, N]);
  g.node('Add', [v, v], {}, 'w');
  g.output('w', 'FP64', [1, N]);
  return encodeModel(g.build());
}

function chunksOf(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.byteLength; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}

describe('BodyBuffer (pure)', () => {
  it('places the byte after the binary header on an 8-byte boundary for every header length', () => {
    for (let headerLength = 0; headerLength <= 2 * TENSOR_ALIGNMENT; headerLength++) {
      const bytes = Buffer.from(Array.from({ length: headerLength + 24 }, (_, i) => i));
      for (const declared of [bytes.byteLength, undefined]) {
        const buffer = new BodyBuffer(declared, headerLength);
        for (const chunk of chunksOf(bytes, 5)) expect(buffer.push(chunk)).toBe(true);
        const body = buffer.finish();
        expect(body.equals(bytes), `header ${headerLength}, declared ${declared}`).toBe(true);
        expect((body.byteOffset + headerLength) % TENSOR_ALIGNMENT, `header ${headerLength}`).toBe(0);
        expect(body.byteOffset).toBe(bodyPadding(headerLength));
        // Nothing but the padding shares the buffer: the request may move it to a worker.
        expect(body.byteOffset + body.byteLength).toBe(body.buffer.byteLength);
        expect(ownsItsBuffer(body)).toBe(true);
      }
    }
    expect(bodyPadding(undefined)).toBe(0);
    expect(bodyPadding(-3)).toBe(0);
    expect(ownsItsBuffer(Buffer.from('not from a BodyBuffer'))).toBe(false);
  });

  it('refuses a chunk that would pass the declared length, and counts what it kept', () => {
    const buffer = new BodyBuffer(10, undefined);
    expect(buffer.push(Buffer.alloc(6, 1))).toBe(true);
    expect(buffer.push(Buffer.alloc(5, 2))).toBe(false);
    expect(buffer.received).toBe(6);
    expect(buffer.push(Buffer.alloc(4, 3))).toBe(true);
    expect([...buffer.finish()]).toEqual([1, 1, 1, 1, 1, 1, 3, 3, 3, 3]);
  });

  it('holds no more than about twice what arrived when the Content-Length promises more than EAGER_MAX', () => {
    const declared = 64 * 1024 * 1024;
    const buffer = new BodyBuffer(declared, 3);
    expect(buffer.held).toBe(0); // nothing reserved for a client that declares 64 MB and sends nothing
    expect(buffer.push(Buffer.from('abc'))).toBe(true);
    expect(buffer.held).toBe(3);
    const body = buffer.finish();
    expect(body.toString()).toBe('abc');
    expect(body.buffer.byteLength).toBe(bodyPadding(3) + 3);
  });

  it('places a large declared body in its final buffer once half has come, keeping every byte in order', () => {
    const declared = 4 * EAGER_MAX;
    const bytes = Buffer.from(Array.from({ length: declared }, (_, i) => (i * 31) % 251));
    const buffer = new BodyBuffer(declared, 5);
    for (const chunk of chunksOf(bytes, 10_000)) {
      expect(buffer.push(chunk)).toBe(true);
      expect(buffer.held).toBeLessThanOrEqual(2 * buffer.received + bodyPadding(5));
      if (2 * buffer.received < declared) expect(buffer.held).toBe(buffer.received);
      else expect(buffer.held).toBe(bodyPadding(5) + declared);
    }
    expect(buffer.push(Buffer.from('x'))).toBe(false); // past the declared length
    const body = buffer.finish();
    expect(body.equals(bytes)).toBe(true);
    expect((body.byteOffset + 5) % TENSOR_ALIGNMENT).toBe(0);
    expect(body.byteOffset + body.byteLength).toBe(body.buffer.byteLength);
  });

  it('reserves a small declared body (up to EAGER_MAX) before its first byte', () => {
    expect(new BodyBuffer(EAGER_MAX, 0).held).toBe(EAGER_MAX);
    expect(new BodyBuffer(EAGER_MAX + 1, 0).held).toBe(0);
  });
});

describe('body reader over a real socket', () => {
  let rig: LocalApiRig;
  const seen: Array<Array<Tensor & { offset: number }>> = [];

  beforeAll(async () => {
    rig = await startLocalApiRig('local-api-body-buffer', { double: doubleModel() });
    // The served model, watched: what the route hands to the runtime for each request.
    const served = rig.table.get('double')!;
    rig.table.activate({ ...served, infer: (inputs) => (seen.push(inputs.map((t) => ({ ...t, offset: t.data.byteOffset, data: t.data.slice() }))), served.infer(inputs)) });
  });

  afterAll(async () => {
    await rig?.stop();
  });

  const v = Float64Array.from({ length: N }, (_, i) => i / 7);

  function binaryBody(id: string): { body: Buffer; headerLength: number } {
    const header = { id, inputs: [{ name: 'v', datatype: 'FP64', shape: [1, N], parameters: { binary_data_size: v.byteLength } }] };
    return joinBinaryBody(header, [new Uint8Array(v.buffer)]);
  }

  function send(head: string, chunks: Buffer[]) {
    let i = 0;
    return rawRequest({ socketPath: rig.socketPath }, head, () => chunks[i++]);
  }

  const headOf = (headerLength: number, length: string) =>
    `POST /v2/models/double/infer HTTP/1.1\r\nHost: localhost\r\n${BINARY_HEADER}: ${headerLength}\r\n${length}\r\n`;

  it('hands the runtime aligned inputs owning their buffer, for header lengths of every remainder mod 8', async () => {
    for (let pad = 0; pad < TENSOR_ALIGNMENT; pad++) {
      seen.length = 0;
      const { body, headerLength } = binaryBody('i'.repeat(pad));
      const reply = await send(headOf(headerLength, `Content-Length: ${body.byteLength}\r\n`), chunksOf(body, 3000));
      expect(reply.status, reply.body).toBe(200);
      const input = seen[0]![0]!;
      expect(Array.from(input.data as Float64Array)).toEqual(Array.from(v));
      expect(input.ownedBuffer, `header of ${headerLength} bytes`).toBe(true);
      // Viewed where it arrived (right after the header), not moved down over it.
      expect(input.offset, `header of ${headerLength} bytes`).toBe(bodyPadding(headerLength) + headerLength);
    }
  });

  it('reads a chunked binary body (no Content-Length) and answers it', async () => {
    seen.length = 0;
    const { body, headerLength } = binaryBody('chunked');
    const framed = chunksOf(body, 1000).map((c) => Buffer.concat([Buffer.from(`${c.byteLength.toString(16)}\r\n`), c, Buffer.from('\r\n')]));
    const reply = await send(headOf(headerLength, 'Transfer-Encoding: chunked\r\n'), [...framed, Buffer.from('0\r\n\r\n')]);
    expect(reply.status, reply.body).toBe(200);
    expect(reply.body).toContain('"id":"chunked"');
    expect(seen[0]![0]!.ownedBuffer).toBe(true);
    expect(Array.from(seen[0]![0]!.data as Float64Array)).toEqual(Array.from(v));
  });

  it('refuses a binary body over its limit by Content-Length before reading it', async () => {
    const { headerLength } = binaryBody('big');
    const size = 64 * 1024 * 1024;
    const reply = await send(headOf(headerLength, `Content-Length: ${size}\r\n`), [Buffer.from('{"inputs":[')]);
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body).error).toMatch(new RegExp(`^request body of ${size} bytes \\(Content-Length\\) is over the \\d+-byte limit for binary inference requests to model "double"`));
    expect(reply.bodyBytesSent).toBeLessThan(100);
  });

  it('answers 400 when the body is shorter or longer than its Content-Length says', async () => {
    const { body, headerLength } = binaryBody('mismatch');
    const headers = { 'content-type': 'application/octet-stream', [BINARY_HEADER]: String(headerLength) };
    // inject() passes a declared length through as given, unlike a real client or server parser.
    const short = await rig.api.app.inject({ method: 'POST', url: '/v2/models/double/infer', payload: body, headers: { ...headers, 'content-length': String(body.byteLength + 5) } });
    expect(short.statusCode).toBe(400);
    expect(short.json().error).toBe(`request body has ${body.byteLength} bytes, its Content-Length says ${body.byteLength + 5}`);
    const long = await rig.api.app.inject({ method: 'POST', url: '/v2/models/double/infer', payload: body, headers: { ...headers, 'content-length': String(body.byteLength - 5) } });
    expect(long.statusCode).toBe(400);
    expect(long.json().error).toBe(`request body has more than the ${body.byteLength - 5} bytes its Content-Length says`);
  });
});
