// The hub's HTTP API as the benches call it: JSON (or bytes) with the operator's bearer token, and
// the enrollment of the simulated devices.

const ENROLL_CONCURRENCY = 16;
/** Network failures a GET is retried after: a keep-alive socket the hub closed as it was reused. */
const GET_ATTEMPTS = 3;

/** `call(method, path, body?, { auth })`: JSON in and out (a Uint8Array body goes as bytes); a non-2xx answer throws with its body. */
export function hubApi(apiUrl, token) {
  return async (method, path, body, { auth = true } = {}) => {
    const bytes = body instanceof Uint8Array;
    for (let attempt = 1; ; attempt++) {
      let res;
      try {
        res = await fetch(`${apiUrl}${path}`, {
          method,
          headers: {
            ...(auth ? { authorization: `Bearer ${token}` } : {}),
            ...(body ? { 'content-type': bytes ? 'application/octet-stream' : 'application/json' } : {}),
          },
          body: body ? (bytes ? body : JSON.stringify(body)) : undefined,
        });
      } catch (err) {
        if (method === 'GET' && attempt < GET_ATTEMPTS) continue;
        throw new Error(`${method} ${path}: ${err.cause?.message ?? err.message}`);
      }
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.json();
    }
  };
}

/**
 * Enrolls `n` devices through the API, one single-use token each, `ENROLL_CONCURRENCY` at a time;
 * `onEnrolled(i + 1)` follows the i-th device's enrollment (for progress lines).
 */
export async function enrollDevices(call, n, { onEnrolled = () => {} } = {}) {
  const devices = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const { token } = await call('POST', '/api/v1/enrollment-tokens', {});
      const { deviceId, secret } = await call('POST', '/api/v1/enroll', { token, name: `bench-${i}` }, { auth: false });
      devices[i] = { id: deviceId, secret };
      onEnrolled(i + 1);
    }
  };
  await Promise.all(Array.from({ length: ENROLL_CONCURRENCY }, worker));
  return devices;
}
