import { createHmac } from 'node:crypto';
import type { DriftWebhookBody } from '@edgefleet/shared';
import type { Logger } from 'pino';

export interface AlertWebhookOptions {
  url: string;
  log: Logger;
  /** Key for the body's signature header; unsigned without one. */
  secret?: string | undefined;
  /** Per attempt. */
  timeoutMs?: number;
  /** Attempts after the first. */
  retries?: number;
  /** First retry delay; doubles per retry. */
  backoffMs?: number;
}

export interface AlertWebhookCounters {
  sent: number;
  failed: number;
  retried: number;
}

export const SIGNATURE_HEADER = 'x-edgefleet-signature';

/** The signature header's value for a body: sha256=<hex HMAC-SHA256 of exactly these bytes>, so a receiver can check who sent it. */
export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** A webhook URL must be http or https; checked at start so a typo stops the hub instead of every alert failing later. */
export function webhookUrlProblem(raw: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    return `"${raw}" is not an absolute URL: expected http:// or https://`;
  }
  return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? null : `"${raw}" uses ${parsed.protocol}: expected http:// or https://`;
}

/**
 * POSTs alert changes as JSON (DriftWebhookBody). Sending is off the evaluation pass: `send` returns
 * at once, and each delivery retries with doubling backoff on its own timers. A receiver that is down
 * or slow only costs log lines and counts; it never holds evaluation back. Delivery order across
 * alerts is not guaranteed (a retried one can arrive after a later one): bodies carry the whole alert.
 */
export function createAlertWebhook(opts: AlertWebhookOptions) {
  const problem = webhookUrlProblem(opts.url);
  if (problem) throw new Error(`drift webhook URL ${problem}`);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const retries = opts.retries ?? 3;
  const backoffMs = opts.backoffMs ?? 1000;
  const counters: AlertWebhookCounters = { sent: 0, failed: 0, retried: 0 };
  const inFlight = new Set<Promise<void>>();
  /** Backoff timers with their resolvers, so stop() ends the waits instead of leaving them hanging. */
  const timers = new Map<NodeJS.Timeout, () => void>();
  let stopped = false;

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.set(t, resolve);
    });

  async function attempt(body: string): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (opts.secret) headers[SIGNATURE_HEADER] = webhookSignature(opts.secret, body);
    const res = await fetch(opts.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`webhook answered HTTP ${res.status}: expected 2xx`);
  }

  async function deliver(body: DriftWebhookBody): Promise<void> {
    const json = JSON.stringify(body);
    for (let n = 0; ; n++) {
      try {
        await attempt(json);
        counters.sent++;
        return;
      } catch (err) {
        if (stopped || n >= retries) {
          counters.failed++;
          opts.log.warn({ err, type: body.type, alertId: body.alert.id, attempts: n + 1 }, 'drift webhook delivery failed');
          return;
        }
        counters.retried++;
        await wait(backoffMs * 2 ** n);
        if (stopped) {
          counters.failed++;
          opts.log.warn({ type: body.type, alertId: body.alert.id, attempts: n + 1 }, 'drift webhook delivery abandoned: hub stopping');
          return;
        }
      }
    }
  }

  return {
    counters,
    send(body: DriftWebhookBody): void {
      if (stopped) return;
      const p = deliver(body).finally(() => inFlight.delete(p));
      inFlight.add(p);
    },
    /** Resolves when every delivery started so far has succeeded or given up. */
    async idle(): Promise<void> {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
    /** No new deliveries; pending retries give up at their next failure. */
    async stop(): Promise<void> {
      stopped = true;
      for (const [t, resolve] of timers) {
        clearTimeout(t);
        resolve();
      }
      timers.clear();
      // Attempts under way end by their own timeout at the latest.
      await Promise.all([...inFlight]);
    },
  };
}
export type AlertWebhook = ReturnType<typeof createAlertWebhook>;
