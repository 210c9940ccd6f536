import { spawn } from 'node:child_process';

/**
 * sd_notify for the agent's and hub's mains. Node cannot send on a Unix datagram socket, so the units
 * use Type=notify with NotifyAccess=all and this spawns `systemd-notify` (DESIGN.md, "systemd").
 * Exported as `@edgefleet/shared/systemd`, not from the package root: the rest of shared does no I/O.
 */

/** The part of a pino logger this needs; shared does not depend on pino. */
export interface NotifyLogger {
  warn(fields: Record<string, unknown>, msg: string): void;
  debug(fields: Record<string, unknown>, msg: string): void;
}

/** The `systemd-notify` arguments that send `state`: READY=1 goes through --ready, as systemd's man page asks. */
function notifyArgs(state: string): string[] {
  return state === 'READY=1' ? ['--ready'] : [state];
}

/**
 * Sends `state` (READY=1, STOPPING=1, ...) when run under systemd (NOTIFY_SOCKET set); otherwise does
 * nothing. Never fails the caller: a missing systemd-notify is logged and the process carries on.
 */
export function notifySystemd(logger: NotifyLogger, state: string, env: NodeJS.ProcessEnv = process.env): void {
  if (!env.NOTIFY_SOCKET) return;
  const child = spawn('systemd-notify', notifyArgs(state), { stdio: 'ignore', env });
  child.on('error', (err) => logger.warn({ err: err.message, state }, 'systemd-notify could not be run; continuing'));
  child.on('exit', (code) => {
    if (code === 0) logger.debug({ state }, 'systemd notified');
    else logger.warn({ code, state }, 'systemd-notify failed; continuing');
  });
}
