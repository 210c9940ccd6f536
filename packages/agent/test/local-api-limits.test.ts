import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY_HEADER, joinBinaryBody } from '@edgefleet/shared';
import { buildMlp, encodeModel, GraphBuilder } from '@edgefleet/shared/onnx';
import { binaryBodyLimit, DEFAULT_BODY_LIMITS, jsonBodyLimit } from '../src/local-api/body-limit.js';
import type { LocalApi } from '../src/local-api/local-api.js';
import { loopbackRefusal } from '../src/local-api/loopback-guard.js';
import { startLocalApiRig, type LocalApiRig } from './support/local-api-rig.js';
import { rawRequest } from './support/raw-http.js';

const WIDE = 100_000; // a static FP32 [1, WIDE] input: 400 KB as binary, up to 3.2 MB as JSON

/** y = x + x over a static [1, WIDE] input. */
function wideModel(): Uint8Array {
  const g = new GraphBuilder('wide');
  const x = g.input('x', 'FP32', [1, WIDE]);
  g.node('Add', [x, x], {}, 'y');
  g.output('y', 'FP32', [1, WIDE]);
  return encodeModel(g.build());
}

function get(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An endless JSON body: the start of an infer request, then numbers forever. */
function endlessJson(chunkBytes = 64 * 1024): () => Buffer {
  let first = true;
  const numbers = Buffer.from('0.123456789,'.repeat(Math.ceil(chunkBytes / 12)));
  return () => {
    if (!first) return numbers;
    first = false;
    return Buffer.from('{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[');
  };
}

describe('body limits from the model', () => {
  it('gives JSON what the declared inputs need (floor 1 MiB, cap 8 MiB) and binary the input bytes', () => {
    const spec = (shape: number[], datatype = 'FP32') => ({ name: 'm', inputs: [{ name: 'x', datatype, shape }] });
    expect(jsonBodyLimit(spec([-1, 4]), DEFAULT_BODY_LIMITS).bytes).toBe(1024 * 1024);
    expect(jsonBodyLimit(spec([1, WIDE]), DEFAULT_BODY_LIMITS).bytes).toBe(WIDE * 32 + 64 * 1024);
    // Variable dimensions count 64 each, and the result stays under the cap whatever the shape.
    expect(jsonBodyLimit(spec([-1, 3, 32, 32]), DEFAULT_BODY_LIMITS).bytes).toBe(3 * 32 * 32 * 64 * 32 + 64 * 1024);
    expect(jsonBodyLimit(spec([-1, 3, -1, -1]), DEFAULT_BODY_LIMITS).bytes).toBe(8 * 1024 * 1024);
    expect(jsonBodyLimit(spec([1, 3, 640, 640]), DEFAULT_BODY_LIMITS).bytes).toBe(8 * 1024 * 1024);

    expect(binaryBodyLimit(spec([1, 3, 1024, 1024]), DEFAULT_BODY_LIMITS).bytes).toBe(3 * 1024 * 1024 * 4 + 64 * 1024);
    // Never below the JSON limit: a binary request may carry some inputs as JSON in its header.
    expect(binaryBodyLimit(spec([1, 3, 640, 640], 'UINT8'), DEFAULT_BODY_LIMITS).bytes).toBe(8 * 1024 * 1024);
    expect(binaryBodyLimit(spec([-1, 3, 640, 640]), DEFAULT_BODY_LIMITS).bytes).toBe(256 * 1024 * 1024);
    expect(binaryBodyLimit(spec([1, 3, 8192, 8192]), DEFAULT_BODY_LIMITS).bytes).toBe(256 * 1024 * 1024);
  });

  it('answers the loopback listener only through loopback names (pure rule)', () => {
    expect(loopbackRefusal('127.0.0.1:8080', undefined, 8080)).toBeUndefined();
    expect(loopbackRefusal('LOCALHOST', 'http://localhost:8080', 8080)).toBeUndefined();
    expect(loopbackRefusal('[::1]:8080', 'http://127.0.0.1', 8080)).toBeUndefined();
    expect(loopbackRefusal('localhost:8081', undefined, 8080)).toMatch(/Host "localhost:8081" is not this agent's loopback address/);
    expect(loopbackRefusal('127.0.0.1.evil.example:8080', undefined, 8080)).toMatch(/is not this agent's loopback address/);
    expect(loopbackRefusal(undefined, undefined, 8080)).toMatch(/Host ""/);
    // Other spellings of a loopback name are refused rather than interpreted: none is what a browser
    // sends for the agent's own address, and each is one a rebinding page could send.
    for (const host of ['localhost.:8080', '127.1:8080', '2130706433:8080', '[0:0:0:0:0:0:0:1]:8080', '[::ffff:127.0.0.1]:8080', 'x@127.0.0.1:8080', '127.0.0.1:8080:8080', '127.0.0.1:']) {
      expect(loopbackRefusal(host, undefined, 8080), host).toMatch(/is not this agent's loopback address/);
    }
    expect(loopbackRefusal('localhost:8080', 'null', 8080)).toMatch(/Origin "null" may not use/);
    expect(loopbackRefusal('localhost:8080', 'https://localhost:8080', 8080)).toMatch(/Origin/);
    expect(loopbackRefusal('localhost:8080', 'http://localhost:3000', 8080)).toMatch(/Origin "http:\/\/localhost:3000"/);
  });
});

describe('local API limits over a real socket and loopback TCP', () => {
  let rig: LocalApiRig;
  let api: LocalApi;
  let socketPath: string;

  beforeAll(async () => {
    rig = await startLocalApiRig('local-api-limits', { mlp: buildMlp({ inputSize: 4, hidden: [8], outputSize: 3 }), wide: wideModel() }, { tcpPort: 0 });
    ({ api, socketPath } = rig);
  });

  afterAll(async () => {
    await rig?.stop();
  });

  const mlpRequest = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
  const post = (path: string, body: string | Buffer, headers = '') =>
    rawRequest({ socketPath }, `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}\r\n`, (() => {
      let sent = false;
      return () => (sent ? undefined : ((sent = true), Buffer.from(body)));
    })());

  it('refuses a 48 MB JSON body by its Content-Length before reading it, and keeps serving', async () => {
    const size = 48 * 1024 * 1024;
    // Only the head and one chunk are ever sent: the answer must come without the rest of the body.
    let chunks = 0;
    const reply = await rawRequest({ socketPath }, `POST /v2/models/mlp/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`, () =>
      chunks++ === 0 ? Buffer.from('{"inputs":[') : undefined,
    );
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body).error).toBe(
      `request body of ${size} bytes (Content-Length) is over the 1048576-byte limit for JSON inference requests to model "mlp" ` +
        '(32 bytes per input value, at least 1048576 and at most 8388608 bytes); send large tensors as binary data with the Inference-Header-Content-Length header (binary tensor extension)',
    );
    expect(reply.bodyBytesSent).toBeLessThan(100);

    const ok = await post('/v2/models/mlp/infer', mlpRequest);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).outputs[0].shape).toEqual([1, 3]);
  });

  it('stops reading a chunked JSON body once it passes the limit', async () => {
    const reply = await rawRequest({ socketPath }, 'POST /v2/models/mlp/infer HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n', (() => {
      const next = endlessJson();
      return () => {
        const data = next();
        return Buffer.concat([Buffer.from(`${data.byteLength.toString(16)}\r\n`), data, Buffer.from('\r\n')]);
      };
    })());
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body).error).toMatch(/^request body of more than 1048576 bytes is over the 1048576-byte limit for JSON inference requests to model "mlp"/);
    // The server answered while the client was still sending: nowhere near 48 MB went through.
    expect(reply.bodyBytesSent).toBeLessThan(8 * 1024 * 1024);
    expect((await post('/v2/models/mlp/infer', mlpRequest)).status).toBe(200);
  });

  it('sizes the limit by the model: a large static input goes as JSON up to its need, as binary up to its bytes', async () => {
    const x = new Float32Array(WIDE).map((_, i) => (i % 100) / 100);
    const jsonBody = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, WIDE], data: Array.from(x) }], parameters: { binary_data_output: true } });
    expect(jsonBody.length).toBeGreaterThan(1024 * 1024); // over the floor, within what this model's input needs
    const json = await post('/v2/models/wide/infer', jsonBody);
    expect(json.status).toBe(200);

    const header = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, WIDE], parameters: { binary_data_size: x.byteLength } }], parameters: { binary_data_output: true } };
    const bin = joinBinaryBody(header, [new Uint8Array(x.buffer)]);
    expect((await post('/v2/models/wide/infer', bin.body, `${BINARY_HEADER}: ${bin.headerLength}\r\n`)).status).toBe(200);

    const limit = WIDE * 32 + 64 * 1024;
    const tooBig = Buffer.concat([bin.body, Buffer.alloc(limit)]);
    const refused = await post('/v2/models/wide/infer', tooBig, `${BINARY_HEADER}: ${bin.headerLength}\r\n`);
    expect(refused.status).toBe(413);
    expect(JSON.parse(refused.body).error).toBe(
      `request body of ${tooBig.byteLength} bytes (Content-Length) is over the ${limit}-byte limit for binary inference requests to model "wide" (its inputs hold ${WIDE * 4} bytes)`,
    );
  });

  it('holds the JSON header of a binary request to the JSON limit: the binary header is no way around it', async () => {
    // mlp has a variable batch dimension, so its binary limit is the 256 MiB cap; its JSON limit is 1 MiB.
    const padded = mlpRequest.slice(0, -1) + ' '.repeat(2 * 1024 * 1024) + '}';
    let chunks = 0;
    const reply = await rawRequest(
      { socketPath },
      `POST /v2/models/mlp/infer HTTP/1.1\r\nHost: localhost\r\n${BINARY_HEADER}: ${padded.length}\r\nContent-Length: ${padded.length}\r\n\r\n`,
      () => (chunks++ === 0 ? Buffer.from(padded.slice(0, 1024)) : undefined),
    );
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body).error).toBe(
      `binary inference header of ${padded.length} bytes (${BINARY_HEADER}) is over the 1048576-byte limit for JSON inference requests to model "mlp" ` +
        '(32 bytes per input value, at least 1048576 and at most 8388608 bytes); send large tensors as binary data with the Inference-Header-Content-Length header (binary tensor extension)',
    );
    expect(reply.bodyBytesSent).toBeLessThan(2048);

    // A header within the JSON limit still goes through.
    const bin = joinBinaryBody({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }] }, [new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer)]);
    expect((await post('/v2/models/mlp/infer', bin.body, `${BINARY_HEADER}: ${bin.headerLength}\r\n`)).status).toBe(200);
  });

  it('answers 400 naming the problem for data nested far deeper than the shape, and keeps serving', async () => {
    const depth = 100_000;
    const request = (data: string) => `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":${data}}]}`;
    const deepArrays = await post('/v2/models/mlp/infer', request(`${'['.repeat(depth)}1,2,3,4${']'.repeat(depth)}`));
    expect(deepArrays.status).toBe(400);
    expect(JSON.parse(deepArrays.body).error).toBe('input "input" (FP32): data is nested deeper than the 2 dimensions of its shape [1,4]');

    const deepObject = await post('/v2/models/mlp/infer', request(`[1,2,3,${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}]`));
    expect(deepObject.status).toBe(400);
    expect(JSON.parse(deepObject.body).error).toBe('input "input" (FP32): data[3] = an object is not a number');
    // A nested form within the shape's rank is still the protocol's row-major data.
    const nested = await post('/v2/models/mlp/infer', request('[[1,2,3,4]]'));
    expect(nested.status).toBe(200);
    expect((await post('/v2/models/mlp/infer', mlpRequest)).status).toBe(200);
  });

  it('answers 404 for an unknown model before reading its body', async () => {
    const reply = await rawRequest({ socketPath }, `POST /v2/models/nope/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${48 * 1024 * 1024}\r\n\r\n`, () => undefined);
    expect(reply.status).toBe(404);
    expect(JSON.parse(reply.body).error).toMatch(/no model "nope" is loaded/);
  });

  it('answers on loopback TCP only for loopback Host and Origin; the Unix socket takes any Host', async () => {
    const port = api.tcpPort()!;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'localhost']) {
      expect((await get(port, '/v2/health/live', { host })).status).toBe(200);
    }
    expect((await get(port, '/v2', { host: `localhost:${port}`, origin: `http://localhost:${port}` })).status).toBe(200);

    const rebound = await get(port, '/v2/models/mlp', { host: `attacker.example:${port}` });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).error).toBe(
      `Host "attacker.example:${port}" is not this agent's loopback address; expected 127.0.0.1:${port}, localhost:${port} or [::1]:${port} (requests through other names are refused against DNS rebinding)`,
    );
    const crossOrigin = await get(port, '/v2/models/mlp', { host: `127.0.0.1:${port}`, origin: 'http://attacker.example' });
    expect(crossOrigin.status).toBe(403);
    expect(JSON.parse(crossOrigin.body).error).toMatch(/^Origin "http:\/\/attacker.example" may not use the agent's local API/);

    // An infer request through a rebound name is refused before its body is read.
    const infer = await rawRequest({ port }, `POST /v2/models/mlp/infer HTTP/1.1\r\nHost: attacker.example\r\nContent-Length: ${mlpRequest.length}\r\n\r\n${mlpRequest}`, () => undefined);
    expect(infer.status).toBe(403);

    const viaSocket = await rawRequest({ socketPath }, 'GET /v2/health/live HTTP/1.1\r\nHost: attacker.example\r\n\r\n', () => undefined);
    expect(viaSocket.status).toBe(200);
  });
});
