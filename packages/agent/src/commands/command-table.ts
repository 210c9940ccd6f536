import { MAX_CMD_ID_LENGTH, type CmdMessage } from '@edgefleet/shared';
import type { Logger } from 'pino';
import { boundedText } from '../deployment/step-context.js';
import type { RecordBody } from '../hub-link/hub-link.js';

/** What a verb answers; the dispatcher adds the command's id and publishes it as one cmd/result record. */
export type CommandOutcome = { ok: true; result: unknown } | { ok: false; error: string };

/** Runs one verb. May throw: the error's message becomes the ok:false answer. */
export type CommandHandler = (args: CmdMessage['args']) => Promise<CommandOutcome>;

export interface CommandDispatcherOptions {
  /** One handler per verb the agent knows; issue 17's capture-samples adds its own entry. */
  handlers: Readonly<Record<string, CommandHandler>>;
  /** Stores the answer in the outbox (durable, sent when the hub is reachable). */
  publish: (body: RecordBody<'cmd/result'>) => void;
  logger: Logger;
}

export interface CommandDispatcher {
  /** Starts the verb's handler; its answer is published when it settles. */
  handle(cmd: CmdMessage): void;
  /** Waits for every running command to answer (stop their handlers' parts first so they end). */
  stop(): Promise<void>;
}

/** Command ids remembered so a redelivered cmd (QoS 1 may deliver twice) is not run and answered twice. */
const REMEMBERED_IDS = 256;

export function createCommandDispatcher(opts: CommandDispatcherOptions): CommandDispatcher {
  const log = opts.logger.child({ module: 'commands' });
  const seen = new Set<string>();
  const running = new Set<Promise<void>>();
  const known = Object.keys(opts.handlers);

  function remember(id: string): boolean {
    if (seen.has(id)) return false;
    seen.add(id);
    // A Set iterates in insertion order: the first entry is the oldest.
    if (seen.size > REMEMBERED_IDS) seen.delete(seen.values().next().value!);
    return true;
  }

  function answer(id: string, verb: string, outcome: CommandOutcome): void {
    if (outcome.ok) {
      log.info({ id, verb }, 'command done');
      opts.publish({ id, ok: true, result: outcome.result });
    } else {
      log.warn({ id, verb, err: outcome.error }, 'command failed');
      opts.publish({ id, ok: false, error: boundedText(outcome.error) });
    }
  }

  async function run(cmd: CmdMessage, handler: CommandHandler): Promise<void> {
    let outcome: CommandOutcome;
    try {
      outcome = await handler(cmd.args);
    } catch (err) {
      outcome = { ok: false, error: (err as Error).message ?? String(err) };
    }
    answer(cmd.id, cmd.verb, outcome);
  }

  return {
    handle(cmd) {
      // No answer can carry such an id (cmd/result bounds it too): refused here, by name, unanswered.
      if (cmd.id.length > MAX_CMD_ID_LENGTH) {
        log.warn({ idLength: cmd.id.length, verb: cmd.verb }, `command id is ${cmd.id.length} characters, more than ${MAX_CMD_ID_LENGTH}; not run`);
        return;
      }
      if (!remember(cmd.id)) {
        log.info({ id: cmd.id, verb: cmd.verb }, 'command delivered again; already handled');
        return;
      }
      const handler = Object.hasOwn(opts.handlers, cmd.verb) ? opts.handlers[cmd.verb] : undefined;
      if (!handler) {
        const knows = known.length > 0 ? `this agent knows ${known.map((v) => `"${v}"`).join(', ')}` : 'this agent knows none';
        answer(cmd.id, cmd.verb, { ok: false, error: `unknown verb "${cmd.verb}": ${knows}` });
        return;
      }
      log.info({ id: cmd.id, verb: cmd.verb }, 'command received');
      const job = run(cmd, handler);
      running.add(job);
      void job.finally(() => running.delete(job));
    },
    async stop() {
      await Promise.all(running);
    },
  };
}
