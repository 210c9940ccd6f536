/** What a cookie-authenticated request says about where it came from. */
export interface RequestOrigin {
  method: string;
  protocol: string;
  host: string | undefined;
  origin: string | undefined;
  referer: string | undefined;
  contentType: string | undefined;
  /** A body was sent (Content-Length above 0 or a Transfer-Encoding). */
  hasBody: boolean;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * Why a cookie-authenticated write must be refused, or undefined when it may proceed.
 *
 * SameSite does not separate ports on one host, so a page elsewhere on the host could post a form
 * with the operator's cookie. A form can only send text/plain, urlencoded or multipart bodies and
 * a cross-origin fetch with JSON needs a CORS preflight the hub never grants; the Origin (or
 * Referer) check closes the rest.
 */
export function csrfProblem(r: RequestOrigin): string | undefined {
  if (SAFE_METHODS.has(r.method.toUpperCase())) return undefined;
  if (!r.host) return 'a cookie-authenticated write needs a Host header';
  const expected = `${r.protocol}://${r.host}`.toLowerCase();
  const source = r.origin ?? (r.referer === undefined ? undefined : originOf(r.referer) ?? r.referer);
  if (source === undefined) {
    return `a cookie-authenticated ${r.method} needs an Origin (or Referer) header equal to ${expected}; API clients use "Authorization: Bearer <token>"`;
  }
  if (source.toLowerCase() !== expected) return `cross-origin request refused: origin ${source} is not the hub's own origin ${expected}`;
  const mediaType = r.contentType?.split(';')[0]!.trim().toLowerCase();
  if (r.hasBody && mediaType !== 'application/json') {
    return `a cookie-authenticated ${r.method} must send a JSON body (Content-Type: application/json), not ${mediaType ?? 'a body without a content type'}`;
  }
  if (!r.hasBody && mediaType !== undefined && mediaType !== '' && mediaType !== 'application/json') {
    return `a cookie-authenticated ${r.method} must send a JSON body or none, not ${mediaType}`;
  }
  return undefined;
}
