import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { HubTlsFiles } from '../config.js';

/** What the HTTPS and MQTTS listeners are built from, and the CA chain devices pin. */
export interface ServerTls {
  cert: string;
  key: string;
  /** PEM chain handed to devices at enrollment; undefined for a publicly trusted certificate. */
  caPem: string | undefined;
  /** The leaf certificate's expiry, for the start-up log. */
  validTo: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
/** A chain longer than this is a configuration mistake, not a real PKI. */
const MAX_CHAIN = 10;
/** PEM files are a few KB; a device or a huge file named by mistake must not hang the start reading it. */
const MAX_PEM_BYTES = 1024 * 1024;

function readPem(path: string, variable: string): string {
  let text: string;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) throw new Error('not a regular file');
    if (stat.size > MAX_PEM_BYTES) throw new Error(`${stat.size} bytes, more than a PEM file's ${MAX_PEM_BYTES}`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`${variable}: cannot read ${path}: ${(err as Error).message}`);
  }
  return text;
}

function certificates(pem: string, path: string, variable: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new Error(`${variable}: ${path} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new Error(`${variable}: certificate ${i + 1} in ${path} is not a valid X.509 certificate: ${(err as Error).message}`);
    }
  });
}

function privateKey(pem: string, path: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new Error(`EDGEFLEET_HUB_TLS_KEY: ${path} is not a PEM private key (an encrypted key is not supported): ${(err as Error).message}`);
  }
}

/** Devices refuse a certificate outside its validity period; the hub says so at start instead of serving it. */
function checkValidity(leaf: X509Certificate, path: string, now: Date): void {
  if (now < new Date(leaf.validFrom)) {
    throw new Error(`EDGEFLEET_HUB_TLS_CERT: the certificate in ${path} is not valid before ${leaf.validFrom} (it is now ${now.toUTCString()}): check the clock`);
  }
  if (now > new Date(leaf.validTo)) {
    throw new Error(`EDGEFLEET_HUB_TLS_CERT: the certificate in ${path} expired on ${leaf.validTo}: devices refuse it; renew it`);
  }
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/**
 * Whether the leaf chains up to a certificate of the CA file, through intermediates from either
 * file; a device pinning that CA would otherwise be refused on every connect.
 */
function chainsToCa(leaf: X509Certificate, intermediates: readonly X509Certificate[], cas: readonly X509Certificate[]): boolean {
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    if (cas.some((ca) => issuedBy(current, ca))) return true;
    const next = intermediates.find((c) => c !== current && issuedBy(current, c));
    if (!next) return false;
    current = next;
  }
  return false;
}

/**
 * Reads and checks the operator's TLS files: each must parse, the certificate must be valid now,
 * the key must belong to it, and it must chain to the CA file. Any failure names the file, so the
 * hub refuses to start instead of serving a TLS that no device can use.
 */
export function loadServerTls(files: HubTlsFiles, now = new Date()): ServerTls {
  const cert = readPem(files.certFile, 'EDGEFLEET_HUB_TLS_CERT');
  const key = readPem(files.keyFile, 'EDGEFLEET_HUB_TLS_KEY');
  const [leaf, ...chain] = certificates(cert, files.certFile, 'EDGEFLEET_HUB_TLS_CERT');
  checkValidity(leaf!, files.certFile, now);
  if (!leaf!.checkPrivateKey(privateKey(key, files.keyFile))) {
    throw new Error(`EDGEFLEET_HUB_TLS_KEY: ${files.keyFile} is not the private key of the certificate in ${files.certFile}`);
  }
  let caPem: string | undefined;
  if (files.caFile) {
    caPem = readPem(files.caFile, 'EDGEFLEET_HUB_TLS_CA');
    const cas = certificates(caPem, files.caFile, 'EDGEFLEET_HUB_TLS_CA');
    if (!chainsToCa(leaf!, [...chain, ...cas], cas)) {
      throw new Error(`EDGEFLEET_HUB_TLS_CA: no certificate in ${files.caFile} signed the certificate in ${files.certFile} (subject "${leaf!.subject}", issuer "${leaf!.issuer}")`);
    }
    caPem = cas.map((c) => c.toString().trim()).join('\n') + '\n';
  }
  return { cert, key, caPem, validTo: leaf!.validTo };
}
