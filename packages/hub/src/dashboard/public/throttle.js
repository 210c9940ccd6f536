/**
 * Runs the async `task` at most once per `intervalMs` and never twice at once. Requests that arrive
 * while it waits join the coming run; requests during a run get one more run after it, so the last
 * request is always served with fresh data (bursts of SSE events cost one fetch, not one each).
 * `task` handles its own errors: it runs from a timer, where a rejection would go unheard.
 */
export function createThrottle(task, intervalMs) {
  let timer = null;
  let running = false;
  let again = false;
  let lastStart = 0;

  async function run() {
    timer = null;
    running = true;
    again = false;
    lastStart = Date.now();
    try {
      await task();
    } finally {
      running = false;
      if (again) request();
    }
  }

  function request() {
    if (running) {
      again = true;
      return;
    }
    if (timer !== null) return;
    timer = setTimeout(run, Math.max(0, lastStart + intervalMs - Date.now()));
  }

  function cancel() {
    clearTimeout(timer);
    timer = null;
    again = false;
  }

  return { request, cancel };
}
