/** The hub's server-sent event names (see packages/hub/src/events/hub-event-bus.ts). */
const EVENT_NAMES = ['device', 'telemetry', 'rollout', 'variants', 'plan', 'drift'];
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;

function parse(data) {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
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
    if (message !== null && typeof message === 'object') onEvent(name, message);
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
