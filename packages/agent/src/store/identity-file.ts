import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Compile } from 'typebox/compile';
import { EdgefleetError, EnrollResponse } from '@edgefleet/shared';

/** identity.json: what enrollment returned (device id, secret, pinned hub key, URLs, pinned TLS CA if any), mode 0600. */
export const IDENTITY_FILE = 'identity.json';

const identityCheck = Compile(EnrollResponse);

export function identityPath(stateDir: string): string {
  return join(stateDir, IDENTITY_FILE);
}

export async function writeIdentity(stateDir: string, identity: EnrollResponse): Promise<string> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const path = identityPath(stateDir);
  const tmp = `${path}.tmp`;
  await writeFile(tmp, `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
  return path;
}

export async function readIdentity(stateDir: string): Promise<EnrollResponse> {
  const path = identityPath(stateDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new EdgefleetError('UNAUTHORIZED', `${path} does not exist: enroll first with "edgefleet-agent enroll --hub <apiUrl> --token <token>"`);
    }
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new EdgefleetError('INTERNAL', `${path} is not valid JSON (${(err as Error).message}); enroll again`);
  }
  if (!identityCheck.Check(parsed)) {
    throw new EdgefleetError('INTERNAL', `${path} lacks deviceId/secret/hubPublicKey/brokerUrl/apiUrl; enroll again`);
  }
  return parsed;
}
