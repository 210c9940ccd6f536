/**
 * The hub's server-sent events, reduced to four kinds: device, telemetry, presence, rollout.
 * EventSource only delivers named events to listeners registered under that exact name, so the
 * names a hub may reasonably use are listed here; unnamed `message` events carry a `type` field.
 */
const EVENT_NAMES = [
  'device', 'devices', 'device-updated', 'device.updated', 'device-changed', 'device:updated',
  'telemetry', 'device-telemetry', 'device.telemetry',
  'presence', 'device-presence', 'device.presence', 'status',
  'rollout', 'rollouts', 'rollout-updated', 'rollout.updated', 'rollout-progress', 'rollout.progress', 'rollout-device',
];
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;

/** Maps an event name or `type` to one of the four kinds (null when none applies). */
export function kindOf(name) {
  const n = String(name ?? '').toLowerCase();
  if (n.includes('telemetry')) return 'telemetry';
  if (n.includes('presence') || n === 'status' || n.endsWith('online') || n.endsWith('offline')) return 'presence';
  if (n.includes('rollout')) return 'rollout';
  if (n.includes('device')) return 'device';
  return null;
}

function parse(data) {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

/** Unwraps `{type, data|payload}` envelopes; a bare object with `type` is its own payload. */
function unwrap(message) {
  if (message && typeof message === 'object' && !Array.isArray(message)) {
    if (message.data && typeof message.data === 'object') return message.data;
    if (message.payload && typeof message.payload === 'object') return message.payload;
    const { type: _type, event: _event, ...rest } = message;
    return rest;
  }
  return message;
}

/**
 * Opens the stream. onEvent(kind, payload) per event; onStatus('connecting'|'live'|'down');
 * onResync() after a reconnect or an error (events may have been missed).
 */
export function connectEvents(url, { onEvent, onStatus, onResync }) {
  let source = null;
  let retryMs = RETRY_MIN_MS;
  let retryTimer = null;
  let hadError = false;
  let closed = false;

  function dispatch(name, data) {
    const message = parse(data);
    if (message === null || message === undefined) return;
    const kind = kindOf(name === 'message' ? message.type ?? message.event : name);
    if (!kind) return;
    const payload = name === 'message' ? unwrap(message) : message;
    for (const item of Array.isArray(payload) ? payload : [payload]) if (item) onEvent(kind, item);
  }

  function open() {
    if (closed) return;
    onStatus('connecting');
    source = new EventSource(url, { withCredentials: true });
    source.addEventListener('open', () => {
      retryMs = RETRY_MIN_MS;
      onStatus('live');
      if (hadError) onResync();
      hadError = false;
    });
    source.addEventListener('error', () => {
      hadError = true;
      onStatus(source.readyState === EventSource.CLOSED ? 'down' : 'connecting');
      onResync();
      // CONNECTING: the browser retries by itself. CLOSED (e.g. a non-200 answer): retry here, backing off.
      if (source.readyState === EventSource.CLOSED && retryTimer === null) {
        retryTimer = setTimeout(() => {
          retryTimer = null;
          open();
        }, retryMs);
        retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
      }
    });
    source.addEventListener('message', (e) => dispatch('message', e.data));
    for (const name of EVENT_NAMES) source.addEventListener(name, (e) => dispatch(name, e.data));
  }

  function close() {
    closed = true;
    clearTimeout(retryTimer);
    retryTimer = null;
    source?.close();
    onStatus('idle');
  }

  open();
  return { close };
}
