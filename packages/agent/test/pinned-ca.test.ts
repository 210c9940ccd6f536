import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueServerCert, makePrivateCa } from '../../../test/support/private-ca.js';
import { hasTool } from '../../../test/support/tools.js';
import { generateSigningKeyPair } from '@edgefleet/shared';
import { enroll } from '../src/cli/enroll.js';
import { parseCommand } from '../src/config.js';
import { createDownloader } from '../src/models/download.js';
import { fileSize } from '../src/models/model-files.js';
import { checkPinnedEndpoints, pinnedFetch, readCaFile } from '../src/tls/pinned-ca.js';
import { startEnrollServer } from './support/fake-enroll.js';
import { silentLogger, tempDir } from './support/temp.js';

describe('pinned CA checks', () => {
  it('refuses plain endpoints in an identity that pins a CA, and allows them without one', () => {
    const tlsIdentity = { hubCaPem: 'pem', apiUrl: 'https://hub:8443', brokerUrl: 'mqtts://hub:8883' };
    expect(() => checkPinnedEndpoints(tlsIdentity, '/state/identity.json')).not.toThrow();
    expect(() => checkPinnedEndpoints({ ...tlsIdentity, apiUrl: 'http://hub:8080' }, '/state/identity.json')).toThrow(
      /\/state\/identity\.json pins a hub CA but its apiUrl "http:\/\/hub:8080" is not https:\/\//,
    );
    expect(() => checkPinnedEndpoints({ ...tlsIdentity, brokerUrl: 'mqtt://hub:1883' }, '/state/identity.json')).toThrow(/brokerUrl "mqtt:\/\/hub:1883" is not mqtts/);
    expect(() => checkPinnedEndpoints({ apiUrl: 'http://hub:8080', brokerUrl: 'mqtt://hub:1883' }, '/state/identity.json')).not.toThrow();
  });

  it('names a --ca file that is missing or holds no certificate', async () => {
    const dir = await tempDir('ca-file');
    try {
      await expect(readCaFile(join(dir.path, 'missing.pem'))).rejects.toThrow(/--ca .*missing\.pem cannot be read/);
      await writeFile(join(dir.path, 'junk.pem'), 'hello\n');
      await expect(readCaFile(join(dir.path, 'junk.pem'))).rejects.toThrow(/--ca .*junk\.pem holds no PEM certificate/);
    } finally {
      await dir.remove();
    }
  });

  it('refuses a --ca that is a device or an oversized file without reading it to the end', async () => {
    await expect(readCaFile('/dev/zero')).rejects.toThrow('--ca /dev/zero cannot be read: not a regular file');
    const dir = await tempDir('ca-huge');
    try {
      await writeFile(join(dir.path, 'huge.pem'), Buffer.alloc(2 * 1024 * 1024, 0x41));
      await expect(readCaFile(join(dir.path, 'huge.pem'))).rejects.toThrow(/huge\.pem cannot be read: 2097152 bytes/);
    } finally {
      await dir.remove();
    }
  });

  it('takes --ca only with an https:// hub', () => {
    expect(() => parseCommand(['enroll', '--hub', 'http://hub:8080', '--token', 't', '--ca', '/etc/ca.pem'])).toThrow(/--ca \/etc\/ca\.pem is for a hub served over TLS/);
    const cmd = parseCommand(['enroll', '--hub', 'https://hub:8443', '--token', 't', '--ca', '/etc/ca.pem']);
    expect(cmd).toMatchObject({ command: 'enroll', config: { caFile: '/etc/ca.pem' } });
    // URL schemes are case-insensitive.
    expect(parseCommand(['enroll', '--hub', 'HTTPS://hub:8443', '--token', 't', '--ca', '/etc/ca.pem'])).toMatchObject({ config: { caFile: '/etc/ca.pem' } });
  });
});

describe.skipIf(!hasTool('openssl', 'openssl'))('a private CA: --ca files, enrollment answers and HTTPS downloads', () => {
  const content = randomBytes(64 * 1024);
  const sha256 = createHash('sha256').update(content).digest('hex');
  let dir: { path: string; remove: () => Promise<void> };
  let server: Server;
  let url: string;
  let caPem: string;
  let caKeyFile: string;
  let wrongCaPem: string;

  beforeAll(async () => {
    dir = await tempDir('pinned-download');
    const ca = await makePrivateCa(dir.path, 'fleet-ca');
    const wrong = await makePrivateCa(dir.path, 'other-ca');
    const cert = await issueServerCert(ca, dir.path, 'hub');
    caPem = await readFile(ca.caFile, 'utf8');
    caKeyFile = ca.caKeyFile;
    wrongCaPem = await readFile(wrong.caFile, 'utf8');
    server = createServer({ cert: await readFile(cert.certFile), key: await readFile(cert.keyFile) }, (_req, res) => {
      res.writeHead(200, { 'content-length': content.byteLength }).end(content);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/artifacts/${sha256}`;
  }, 60_000);

  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await dir?.remove();
  });

  const request = (name: string) => ({
    url,
    partPath: join(dir.path, `${name}.part`),
    finalPath: join(dir.path, `${name}.onnx`),
    sha256,
    size: content.byteLength,
    auth: { username: 'dev-x', password: 'secret' },
  });

  it('refuses a --ca file that holds a private key: the key is never copied into identity.json', async () => {
    const bundle = join(dir.path, 'ca-and-key.pem');
    await writeFile(bundle, caPem + (await readFile(caKeyFile, 'utf8')));
    await expect(readCaFile(bundle)).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: `--ca ${bundle} holds a private key; give the CA certificate alone (a device needs only the certificate, and its key must stay with the CA)`,
    });
    await expect(readCaFile(join(dir.path, 'fleet-ca.pem'))).resolves.toBe(caPem);
  });

  it('refuses an enrollment answer that pins a CA but names plain endpoints, and writes no identity', async () => {
    const hub = await startEnrollServer('tok-ca', {
      deviceId: 'dev-ca',
      secret: 's'.repeat(43),
      hubPublicKey: generateSigningKeyPair().publicKeyPem,
      brokerUrl: 'mqtt://127.0.0.1:1883',
      hubCaPem: caPem,
    });
    const stateDir = join(dir.path, 'enroll-state');
    try {
      await expect(enroll({ hubUrl: hub.url, token: 'tok-ca', labels: {}, stateDir, logLevel: 'silent' }, silentLogger)).rejects.toMatchObject({
        code: 'BAD_REQUEST',
        message:
          `the enrollment answer from ${hub.url}/api/v1/enroll pins a hub CA but its apiUrl "${hub.url}" is not https://: the agent does not fall back to plain HTTP; ` +
          "the hub's public URLs must be https:// and mqtts:// when it serves TLS",
      });
      expect(await fileSize(join(stateDir, 'identity.json'))).toBeUndefined();
    } finally {
      await hub.close();
    }
  });

  it('downloads from a hub whose certificate chains to the pinned CA', async () => {
    await createDownloader({ logger: silentLogger, retries: 0, ca: caPem })(request('good'));
    expect(createHash('sha256').update(await readFile(join(dir.path, 'good.onnx'))).digest('hex')).toBe(sha256);
  });

  it('refuses a hub whose certificate does not chain to the pinned CA', async () => {
    await expect(createDownloader({ logger: silentLogger, retries: 0, ca: wrongCaPem })(request('bad'))).rejects.toThrow(/failed after 1 attempts/);
    const pinned = pinnedFetch(wrongCaPem);
    try {
      const cause = await pinned.fetch(url).then(
        () => undefined,
        (err: Error & { cause?: Error }) => err.cause?.message,
      );
      expect(cause).toMatch(/certificate/i);
    } finally {
      await pinned.close();
    }
  });
});
