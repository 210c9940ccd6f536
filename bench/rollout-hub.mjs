// The operator side of bench/rollout-switch.mjs: knowing when a rollout has ended (the API calls
// themselves are bench/hub-api.mjs). The end is seen on the dashboard's SSE stream (the moment
// the hub emits it) and, in case that stream's shape changes, by polling GET /api/v1/rollouts/:id
// once a second; whichever sees it first gives the time.

/** States a rollout does not leave by itself; only `succeeded` is a good end. */
const ENDED_STATES = new Set(['succeeded', 'halted', 'aborted', 'rolled-back']);
const POLL_MS = 1000;

/**
 * Follows GET /api/v1/events and remembers, per rollout, when a `rollout` event first carried an
 * ended state. Opened before the POST, so an end that comes before the POST's answer is not missed.
 */
export async function rolloutEndWatcher(apiUrl, token) {
  const ended = new Map();
  const waiters = new Map();
  const abort = new AbortController();
  const res = await fetch(`${apiUrl}/api/v1/events`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
  if (!res.ok) throw new Error(`GET /api/v1/events: ${res.status} ${await res.text()}`);
  const onFrame = (frame) => {
    const event = /^event: (.*)$/m.exec(frame)?.[1];
    const data = /^data: (.*)$/m.exec(frame)?.[1];
    if (event !== 'rollout' || !data) return;
    const { rolloutId, state } = JSON.parse(data);
    if (!ENDED_STATES.has(state) || ended.has(rolloutId)) return;
    ended.set(rolloutId, { state, at: Date.now() });
    waiters.get(rolloutId)?.();
  };
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        onFrame(buffered.slice(0, end));
        buffered = buffered.slice(end + 2);
      }
    }
  })().catch((err) => {
    if (err.name !== 'AbortError') throw err;
  });
  return {
    /** Resolves with `{state, at}` once the stream has said that `rolloutId` ended. */
    ended(rolloutId) {
      const seen = ended.get(rolloutId);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.set(rolloutId, () => resolve(ended.get(rolloutId))));
    },
    async close() {
      abort.abort();
      await reading;
    },
  };
}

/**
 * Waits for rollout `id` to end: the SSE stream's word, or a poll that finds it ended. Answers
 * `{state, endedAt (ms since epoch), seenBy}`; fails after `timeoutMs`.
 */
export async function rolloutEnd(call, watcher, id, timeoutMs) {
  let polling = true;
  const poll = async () => {
    const deadline = Date.now() + timeoutMs;
    while (polling) {
      const r = await call('GET', `/api/v1/rollouts/${id}`);
      if (ENDED_STATES.has(r.state)) return { state: r.state, endedAt: Date.now(), seenBy: 'poll' };
      if (Date.now() > deadline) throw new Error(`rollout ${id} still ${r.state} after ${timeoutMs / 1000} s: ${JSON.stringify(r.counts)}`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    return undefined;
  };
  const stream = watcher.ended(id).then(({ state, at }) => ({ state, endedAt: at, seenBy: 'events stream' }));
  const polled = poll();
  // A poll still in flight when the stream wins may fail later (the hub stopping): that is not news.
  polled.catch(() => {});
  try {
    return await Promise.race([stream, polled]);
  } finally {
    polling = false;
  }
}
