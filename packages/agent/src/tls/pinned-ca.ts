import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { Agent, fetch as undiciFetch } from 'undici';
import { EdgefleetError } from '@edgefleet/shared';

/** What the agent needs of `fetch`; the pinned variant has the same shape as the global one. */
export type Fetch = typeof fetch;

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** Checks that a PEM text holds at least one X.509 certificate and nothing that fails to parse; `what` names its source. */
export function checkCaPem(pem: string, what: string): string {
  // Whatever passes here is pinned, i.e. copied into identity.json on the device: a CA's key must never go there.
  if (PEM_PRIVATE_KEY.test(pem)) {
    throw new EdgefleetError('BAD_REQUEST', `${what} holds a private key; give the CA certificate alone (a device needs only the certificate, and its key must stay with the CA)`);
  }
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new EdgefleetError('BAD_REQUEST', `${what} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new EdgefleetError('BAD_REQUEST', `certificate ${i + 1} in ${what} is not a valid X.509 certificate: ${(err as Error).message}`);
    }
  }
  return pem;
}

/** CA files are a few KB; a device or a huge file named by mistake must not be read without end. */
const MAX_CA_FILE_BYTES = 1024 * 1024;

/** Reads the CA file given with `--ca`, naming the file when it is missing or not a certificate. */
export async function readCaFile(path: string): Promise<string> {
  let pem: string;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new Error('not a regular file');
    if (info.size > MAX_CA_FILE_BYTES) throw new Error(`${info.size} bytes, more than a CA file's ${MAX_CA_FILE_BYTES}`);
    pem = await readFile(path, 'utf8');
  } catch (err) {
    throw new EdgefleetError('BAD_REQUEST', `--ca ${path} cannot be read: ${(err as Error).message}`);
  }
  return checkCaPem(pem, `--ca ${path}`);
}

export interface PinnedFetch {
  fetch: Fetch;
  /** Closes the connections the pinned dispatcher keeps open. */
  close(): Promise<void>;
}

/**
 * `fetch` that trusts only the pinned CA (Node's `ca` replaces the system roots, it does not add to
 * them), so a hub certificate from any other CA is refused. Without a CA: the global fetch.
 */
export function pinnedFetch(caPem: string | undefined): PinnedFetch {
  if (!caPem) return { fetch: globalThis.fetch, close: async () => undefined };
  const dispatcher = new Agent({ connect: { ca: caPem } });
  const pinned = ((input: Parameters<Fetch>[0], init?: Parameters<Fetch>[1]) =>
    undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...(init as object), dispatcher } as Parameters<typeof undiciFetch>[1])) as unknown as Fetch;
  return { fetch: pinned, close: () => dispatcher.close() };
}

/**
 * With a pinned CA every hub endpoint must be TLS: an identity that pins a CA but names an
 * `http://` or `mqtt://` URL was edited or tampered with, and falling back to plain would send the
 * device secret in clear.
 */
export function checkPinnedEndpoints(
  identity: { hubCaPem?: string | undefined; apiUrl: string; brokerUrl: string },
  path: string,
  advice = 'enroll again',
): void {
  if (!identity.hubCaPem) return;
  if (!identity.apiUrl.startsWith('https://')) {
    throw new EdgefleetError('BAD_REQUEST', `${path} pins a hub CA but its apiUrl "${identity.apiUrl}" is not https://: the agent does not fall back to plain HTTP; ${advice}`);
  }
  if (!/^(mqtts|ssl|wss):\/\//.test(identity.brokerUrl)) {
    throw new EdgefleetError('BAD_REQUEST', `${path} pins a hub CA but its brokerUrl "${identity.brokerUrl}" is not mqtts://: the agent does not fall back to plain MQTT; ${advice}`);
  }
}
