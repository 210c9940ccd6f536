import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A private CA and a hub certificate made with Debian's `openssl` CLI (node:crypto cannot sign
 * X.509 certificates), the way an operator without a public CA would run the hub.
 */
export interface PrivateCa {
  /** The CA certificate, the file devices pin. */
  caFile: string;
  caKeyFile: string;
}

export interface ServerCert {
  certFile: string;
  keyFile: string;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export async function makePrivateCa(dir: string, name: string): Promise<PrivateCa> {
  const caFile = join(dir, `${name}.pem`);
  const caKeyFile = join(dir, `${name}.key`);
  await run('openssl', [
    'req', '-x509', ...EC_KEY, '-keyout', caKeyFile, '-out', caFile, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { caFile, caKeyFile };
}

/** A server certificate for localhost and 127.0.0.1, signed by `ca`. */
export async function issueServerCert(ca: PrivateCa, dir: string, name: string): Promise<ServerCert> {
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  const certFile = join(dir, `${name}.pem`);
  const extFile = join(dir, `${name}.ext`);
  await writeFile(
    extFile,
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  await run('openssl', ['req', ...EC_KEY, '-keyout', keyFile, '-out', csrFile, '-subj', '/CN=localhost']);
  await run('openssl', [
    'x509', '-req', '-in', csrFile, '-CA', ca.caFile, '-CAkey', ca.caKeyFile, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-out', certFile, '-days', '2', '-extfile', extFile,
  ]);
  return { certFile, keyFile };
}
