const API = '/api/v1';

/** The session cookie is missing or no longer valid: the page shows the login form. */
export class AuthRequired extends Error {}

/** A non-2xx answer: the hub's message and stable code (ApiError), and the HTTP status. */
export class ApiFailure extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** JSON call to the hub's API with the session cookie; throws AuthRequired on 401, ApiFailure otherwise. */
export async function api(path, init = {}) {
  const res = await fetch(`${API}${path}`, {
    credentials: 'same-origin',
    ...init,
    headers: { accept: 'application/json', ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers },
  });
  if (res.status === 401) throw new AuthRequired('the hub wants an admin token');
  const body = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const code = body?.code ? ` ${body.code}` : '';
    throw new ApiFailure(`${init.method ?? 'GET'} ${path}: ${res.status}${code}: ${body?.error ?? res.statusText}`, res.status, body?.code ?? null);
  }
  return body;
}

export const EVENTS_URL = `${API}/events`;
