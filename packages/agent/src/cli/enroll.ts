import { Compile } from 'typebox/compile';
import { EdgefleetError, EnrollResponse, type EnrollRequest } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { EnrollConfig } from '../config.js';
import { writeIdentity } from '../store/identity-file.js';

const responseCheck = Compile(EnrollResponse);

/** POSTs the token to the hub and stores the answer in <stateDir>/identity.json; returns it. */
export async function enroll(config: EnrollConfig, logger: Logger): Promise<EnrollResponse> {
  const log = logger.child({ module: 'enroll' });
  const url = `${config.hubUrl}/api/v1/enroll`;
  const body: EnrollRequest = {
    token: config.token,
    ...(config.name ? { name: config.name } : {}),
    ...(Object.keys(config.labels).length > 0 ? { labels: config.labels } : {}),
  };
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch (err) {
    const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
    throw new EdgefleetError('UNAVAILABLE', `cannot reach the hub at ${url}: ${cause}`);
  }
  const text = await res.text();
  if (!res.ok) {
    let detail = text;
    try {
      const parsed = JSON.parse(text) as { error?: string; code?: string };
      detail = `${parsed.code ?? ''} ${parsed.error ?? text}`.trim();
    } catch {
      // not JSON: keep the raw text
    }
    const code = res.status === 401 ? 'TOKEN_INVALID' : res.status >= 500 ? 'UNAVAILABLE' : 'BAD_REQUEST';
    throw new EdgefleetError(code, `enrollment refused by ${url}: HTTP ${res.status} ${detail}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new EdgefleetError('INTERNAL', `enrollment answer from ${url} is not JSON`);
  }
  if (!responseCheck.Check(parsed)) {
    throw new EdgefleetError('INTERNAL', `enrollment answer from ${url} lacks deviceId/secret/hubPublicKey/brokerUrl/apiUrl`);
  }
  const path = await writeIdentity(config.stateDir, parsed);
  log.info({ deviceId: parsed.deviceId, path }, 'enrolled');
  return parsed;
}
