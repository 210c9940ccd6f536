import { request, type ClientRequest } from 'node:http';
import { buildMlp } from '@edgefleet/shared/onnx';
import { describe, expect, it } from 'vitest';
import { MAX_CONCURRENT_UPLOADS } from '../src/models/model-routes.js';
import { eventually, useTestHub } from './hub-harness.js';

describe('model uploads at once', () => {
  const t = useTestHub();

  /** An upload that announces 50 MB and sends 1 KB: the hub holds it open, receiving. */
  function stalledUpload(version: string): Promise<ClientRequest> {
    const { hostname, port } = new URL(t.hub.apiUrl);
    const req = request({
      host: hostname,
      port,
      method: 'POST',
      path: `/api/v1/models/big/versions?version=${version}`,
      headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/octet-stream', 'content-length': 50 * 1024 * 1024 },
    });
    req.on('error', () => undefined);
    return new Promise((resolve) => req.write(Buffer.alloc(1024), () => resolve(req)));
  }

  it('are bounded: one past the bound answers 429 before its body is read, and a finished one frees its place', async () => {
    const stalled = await Promise.all(Array.from({ length: MAX_CONCURRENT_UPLOADS }, (_, i) => stalledUpload(`0.${i}`)));
    const model = buildMlp({ inputSize: 4, hidden: [8], outputSize: 2 });
    let attempt = 0;
    const refused = await eventually(async () => {
      // Until the hub has read both stalled requests' headers, a probe may still be admitted: each probe is a new version.
      const res = await t.api<{ error: string; code: string }>('POST', `/api/v1/models/small/versions?version=probe-${attempt++}`, model);
      return res.status === 429 ? res : null;
    }, 'an upload past the bound to be refused');
    expect(refused.body.code).toBe('TOO_MANY_REQUESTS');
    expect(refused.body.error).toContain(`at most ${MAX_CONCURRENT_UPLOADS} at once`);

    stalled[0]!.destroy();
    const accepted = await eventually(async () => {
      const res = await t.api('POST', '/api/v1/models/small/versions?version=after-abort', model);
      return res.status === 201 ? res : null;
    }, 'an upload to be admitted once a stalled one was aborted');
    expect(accepted.status).toBe(201);
    for (const req of stalled) req.destroy();
  });
});
