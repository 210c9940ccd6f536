import cron from 'node-cron';
import { webhookUrlProblem } from './alert-webhook.js';

/** Every minute, at second 0. */
export const DEFAULT_DRIFT_EVALUATE_CRON = '0 * * * * *';

/** A node-cron schedule from the environment (5 fields, or 6 with seconds), checked at start. */
export function cronScheduleFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!cron.validate(raw)) throw new Error(`${name}="${raw}": expected a cron schedule (5 fields, or 6 with seconds first)`);
  return raw;
}

/** The drift alert webhook URL (http or https), or undefined when unset. */
export function webhookUrlFromEnv(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const problem = webhookUrlProblem(raw);
  if (problem) throw new Error(`${name}=${problem}`);
  return raw;
}
