import { Compile } from 'typebox/compile';
import { EdgefleetError, EnrollResponse, type EnrollRequest } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { DEFAULT_ENROLL_TIMEOUT_MS, type EnrollConfig } from '../config.js';
import { writeIdentity } from '../store/identity-file.js';
import { checkCaPem, checkPinnedEndpoints, pinnedFetch, readCaFile, type Fetch } from '../tls/pinned-ca.js';

const responseCheck = Compile(EnrollResponse);

/** One POST, answer read in full; a hub that accepts and never answers fails after `timeoutMs`. */
async function post(url: string, body: EnrollRequest, timeoutMs: number, fetch: Fetch): Promise<{ res: Response; text: string }> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });
    return { res, text: await res.text() };
  } catch (err) {
    if (signal.aborted) {
      throw new EdgefleetError('UNAVAILABLE', `the hub at ${url} did not answer within ${timeoutMs / 1000} s (--timeout); check the URL and that the hub is up`);
    }
    const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
    throw new EdgefleetError('UNAVAILABLE', `cannot reach the hub at ${url}: ${cause}`);
  }
}

/** POSTs the token to the hub and stores the answer in <stateDir>/identity.json; returns it. */
export async function enroll(config: EnrollConfig, logger: Logger): Promise<EnrollResponse> {
  const log = logger.child({ module: 'enroll' });
  const url = `${config.hubUrl}/api/v1/enroll`;
  const body: EnrollRequest = {
    token: config.token,
    ...(config.name ? { name: config.name } : {}),
    ...(Object.keys(config.labels).length > 0 ? { labels: config.labels } : {}),
  };
  const ca = config.caFile ? await readCaFile(config.caFile) : undefined;
  const pinned = pinnedFetch(ca);
  let answer: { res: Response; text: string };
  try {
    answer = await post(url, body, config.timeoutMs ?? DEFAULT_ENROLL_TIMEOUT_MS, pinned.fetch);
  } finally {
    await pinned.close();
  }
  const { res, text } = answer;
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
  // The hub's own CA came over a channel the --ca file vouched for; without one, the file is what gets pinned.
  if (parsed.hubCaPem) checkCaPem(parsed.hubCaPem, `the enrollment answer's hubCaPem from ${url}`);
  const identity: EnrollResponse = ca && !parsed.hubCaPem ? { ...parsed, hubCaPem: ca } : parsed;
  // `run` refuses such an identity; refused here, the operator hears of it while enrolling.
  checkPinnedEndpoints(identity, `the enrollment answer from ${url}`, "the hub's public URLs must be https:// and mqtts:// when it serves TLS");
  const path = await writeIdentity(config.stateDir, identity);
  log.info({ deviceId: identity.deviceId, path, pinnedCa: identity.hubCaPem !== undefined }, 'enrolled');
  return identity;
}
