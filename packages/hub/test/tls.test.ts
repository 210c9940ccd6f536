import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EnrollResponse } from '@edgefleet/shared';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueServerCert, makePrivateCa, type PrivateCa, type ServerCert } from '../../../test/support/private-ca.js';
import { hasTool } from '../../../test/support/tools.js';
import { createHub } from '../src/app.js';
import { DEFAULT_CONFIG, loadConfig, type HubTlsFiles } from '../src/config.js';
import { loadServerTls } from '../src/tls/server-tls.js';
import { startTestHub, type TestHub } from './hub-harness.js';

interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request that trusts only `ca` (the way a pinning agent does). */
function httpsCall(url: string, ca: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers: init.headers, ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Connects with the real mqtt client; resolves true on CONNACK, false when the connection fails. */
function mqttConnects(url: string, creds: { deviceId: string; secret: string }, ca?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, {
      protocolVersion: 4,
      clientId: `${creds.deviceId}-probe`,
      username: creds.deviceId,
      password: creds.secret,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...(ca ? { ca } : {}),
    });
    const done = (ok: boolean) => {
      client.end(true);
      resolve(ok);
    };
    client.once('connect', () => done(true));
    client.once('error', () => done(false));
    client.once('close', () => done(false));
  });
}

describe.skipIf(!hasTool('openssl', 'openssl'))('hub over TLS with a private CA', () => {
  let dir: string;
  let ca: PrivateCa;
  let caPem: string;
  let wrongCaPem: string;
  let cert: ServerCert;
  let t: TestHub;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ef-hub-tls-'));
    ca = await makePrivateCa(dir, 'fleet-ca');
    const wrong = await makePrivateCa(dir, 'other-ca');
    cert = await issueServerCert(ca, dir, 'hub');
    caPem = await readFile(ca.caFile, 'utf8');
    wrongCaPem = await readFile(wrong.caFile, 'utf8');
    t = await startTestHub({ config: { tls: { certFile: cert.certFile, keyFile: cert.keyFile, caFile: ca.caFile } } });
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the API over HTTPS to a client that trusts the CA, and not to one that trusts another CA', async () => {
    expect(t.hub.apiUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ok = await httpsCall(`${t.hub.apiUrl}/api/v1/health`, caPem);
    expect(ok.status).toBe(200);
    await expect(httpsCall(`${t.hub.apiUrl}/api/v1/health`, wrongCaPem)).rejects.toThrow(/certificate/i);
    // The port speaks only TLS: a plain HTTP request gets no API answer.
    const plain = await fetch(t.hub.apiUrl.replace('https:', 'http:') + '/api/v1/health').then(
      (res) => res.status,
      () => 'refused',
    );
    expect(plain).not.toBe(200);
  });

  it('sends HSTS and upgrade-insecure-requests under TLS', async () => {
    const res = await httpsCall(`${t.hub.apiUrl}/`, caPem);
    expect(res.headers['strict-transport-security']).toMatch(/max-age=\d+/);
    expect(res.headers['content-security-policy']).toContain('upgrade-insecure-requests');
  });

  it('sets the session cookie Secure', async () => {
    const res = await httpsCall(`${t.hub.apiUrl}/api/v1/session`, caPem, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: t.hub.apiUrl },
      body: JSON.stringify({ token: t.adminToken }),
    });
    expect(res.status).toBe(200);
    const cookie = [res.headers['set-cookie'] ?? []].flat().join('\n');
    expect(cookie).toMatch(/;\s*Secure/i);
    expect(cookie).toMatch(/HttpOnly/i);
  });

  it('hands devices https:// and mqtts:// URLs and the CA to pin; MQTTS accepts them and refuses a wrong CA or plain MQTT', async () => {
    const auth = { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' };
    const tok = await httpsCall(`${t.hub.apiUrl}/api/v1/enrollment-tokens`, caPem, { method: 'POST', headers: auth, body: '{"ttlSeconds":60}' });
    expect(tok.status).toBe(201);
    const enrolled = await httpsCall(`${t.hub.apiUrl}/api/v1/enroll`, caPem, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: (JSON.parse(tok.body) as { token: string }).token }),
    });
    expect(enrolled.status).toBe(201);
    const identity = JSON.parse(enrolled.body) as EnrollResponse;
    expect(identity.apiUrl).toBe(t.hub.apiUrl);
    expect(identity.brokerUrl).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    expect(identity.brokerUrl).toBe(t.hub.brokerUrl);
    expect(new X509Certificate(identity.hubCaPem!).fingerprint256).toBe(new X509Certificate(caPem).fingerprint256);

    expect(await mqttConnects(identity.brokerUrl, identity, identity.hubCaPem)).toBe(true);
    expect(await mqttConnects(identity.brokerUrl, identity, wrongCaPem)).toBe(false);
    expect(await mqttConnects(identity.brokerUrl.replace('mqtts:', 'mqtt:'), identity)).toBe(false);
  });
});

describe.skipIf(!hasTool('openssl', 'openssl'))('TLS files the hub refuses to start with', () => {
  let dir: string;
  let files: HubTlsFiles;
  let other: ServerCert;
  let otherCa: PrivateCa;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ef-hub-tls-bad-'));
    const ca = await makePrivateCa(dir, 'fleet-ca');
    otherCa = await makePrivateCa(dir, 'other-ca');
    const cert = await issueServerCert(ca, dir, 'hub');
    other = await issueServerCert(otherCa, dir, 'other');
    files = { certFile: cert.certFile, keyFile: cert.keyFile, caFile: ca.caFile };
  }, 60_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts a matching certificate, key and CA', () => {
    const tls = loadServerTls(files);
    expect(tls.caPem).toContain('BEGIN CERTIFICATE');
  });

  it('names a missing file', () => {
    const missing = join(dir, 'nope.pem');
    expect(() => loadServerTls({ ...files, certFile: missing })).toThrow(new RegExp(`EDGEFLEET_HUB_TLS_CERT: cannot read ${missing}`));
  });

  it('refuses a device or an oversized file without reading it to the end', async () => {
    expect(() => loadServerTls({ ...files, certFile: '/dev/zero' })).toThrow('EDGEFLEET_HUB_TLS_CERT: cannot read /dev/zero: not a regular file');
    const huge = join(dir, 'huge.pem');
    await writeFile(huge, Buffer.alloc(2 * 1024 * 1024, 0x41));
    expect(() => loadServerTls({ ...files, keyFile: huge })).toThrow(/EDGEFLEET_HUB_TLS_KEY: cannot read .*huge\.pem: 2097152 bytes/);
  });

  it('names a file that is not PEM', async () => {
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'not a certificate\n');
    expect(() => loadServerTls({ ...files, certFile: junk })).toThrow(new RegExp(`EDGEFLEET_HUB_TLS_CERT: ${junk} holds no PEM certificate`));
    expect(() => loadServerTls({ ...files, keyFile: junk })).toThrow(new RegExp(`EDGEFLEET_HUB_TLS_KEY: ${junk} is not a PEM private key`));
  });

  it("names a key that is not the certificate's", () => {
    expect(() => loadServerTls({ ...files, keyFile: other.keyFile })).toThrow(new RegExp(`${other.keyFile} is not the private key of the certificate`));
  });

  it('names a CA that did not sign the certificate', () => {
    expect(() => loadServerTls({ ...files, caFile: otherCa.caFile })).toThrow(new RegExp(`EDGEFLEET_HUB_TLS_CA: no certificate in ${otherCa.caFile} signed`));
  });

  it('names a certificate that has expired or is not valid yet: no device would accept it', () => {
    const validTo = new Date(new X509Certificate(readFileSync(files.certFile)).validTo);
    const later = new Date(validTo.getTime() + 1000);
    expect(() => loadServerTls(files, later)).toThrow(new RegExp(`EDGEFLEET_HUB_TLS_CERT: the certificate in ${files.certFile} expired on `));
    const earlier = new Date(Date.UTC(2001, 0, 1));
    expect(() => loadServerTls(files, earlier)).toThrow(new RegExp(`EDGEFLEET_HUB_TLS_CERT: the certificate in ${files.certFile} is not valid before `));
  });

  it('does not start, and leaves nothing listening, when a TLS file is wrong', async () => {
    const dataDir = join(dir, 'data');
    const hub = createHub(
      { ...DEFAULT_CONFIG, dataDir, host: '127.0.0.1', httpPort: 0, mqttPort: 0, tls: { ...files, keyFile: other.keyFile } },
      { log: pino({ level: 'silent' }) },
    );
    await expect(hub.start()).rejects.toThrow(/EDGEFLEET_HUB_TLS_KEY/);
    await hub.stop();
  });

  it('refuses plain public URLs beside TLS: devices pinning the CA would refuse them after enrolling', () => {
    const tlsEnv = { EDGEFLEET_HUB_TLS_CERT: files.certFile, EDGEFLEET_HUB_TLS_KEY: files.keyFile, EDGEFLEET_HUB_TLS_CA: files.caFile! };
    expect(() => loadConfig({ ...tlsEnv, EDGEFLEET_HUB_PUBLIC_URL: 'http://hub.example:8080' })).toThrow(/EDGEFLEET_HUB_PUBLIC_URL="http:\/\/hub.example:8080": the hub serves only HTTPS .* expected https:\/\//);
    expect(() => loadConfig({ ...tlsEnv, EDGEFLEET_HUB_BROKER_URL: 'mqtt://hub.example:1883' })).toThrow(/EDGEFLEET_HUB_BROKER_URL="mqtt:\/\/hub.example:1883": .* expected mqtts:\/\//);
    const ok = loadConfig({ ...tlsEnv, EDGEFLEET_HUB_PUBLIC_URL: 'https://hub.example:8080', EDGEFLEET_HUB_BROKER_URL: 'mqtts://hub.example:8883' });
    expect(ok).toMatchObject({ publicUrl: 'https://hub.example:8080', brokerUrl: 'mqtts://hub.example:8883' });
    // Without TLS at the hub, an https:// public URL is a TLS-terminating proxy in front of it: allowed.
    expect(loadConfig({ EDGEFLEET_HUB_PUBLIC_URL: 'https://hub.example' }).publicUrl).toBe('https://hub.example');
  });

  it('reads certificate and key as a pair from the environment', () => {
    expect(() => loadConfig({ EDGEFLEET_HUB_TLS_CERT: files.certFile })).toThrow(/EDGEFLEET_HUB_TLS_CERT and EDGEFLEET_HUB_TLS_KEY go together/);
    expect(() => loadConfig({ EDGEFLEET_HUB_TLS_CA: files.caFile! })).toThrow(/EDGEFLEET_HUB_TLS_CA=.* needs EDGEFLEET_HUB_TLS_CERT/);
    expect(loadConfig({ EDGEFLEET_HUB_TLS_CERT: files.certFile, EDGEFLEET_HUB_TLS_KEY: files.keyFile }).tls).toEqual({
      certFile: files.certFile,
      keyFile: files.keyFile,
      caFile: undefined,
    });
  });
});
