import { parseArgs } from 'node:util';
import { Compile } from 'typebox/compile';
import { Capabilities, EdgefleetError, Labels } from '@edgefleet/shared';
import type { StandbyPolicy } from './deployment/standby.js';
import { DRIFT_OPTIONS, driftConfig, type DriftConfig } from './drift/drift-config.js';
import type { CapabilityDeclarations } from './telemetry/capabilities.js';

export type { DriftConfig } from './drift/drift-config.js';

/**
 * The only place that reads the environment. CLI flags override environment variables, which
 * override defaults; every value is checked here, so the rest of the agent trusts its config.
 */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface RunConfig {
  stateDir: string;
  socketPath: string;
  /** Optional loopback listener for the local API (127.0.0.1 only). */
  tcpPort?: number;
  /** Worker threads per loaded model and onnxruntime intra-op threads per worker; unset = the runtime sizes the pool to the cores. */
  workers?: number;
  threads?: number;
  telemetryIntervalMs: number;
  /** Store-and-forward outbox bounds and drain rate; what is unset keeps the defaults of outbox-store.ts and record-drain.ts. */
  outbox?: OutboxConfig;
  /** Rollout behaviour on the device; what is unset keeps the runner's defaults. */
  deployment?: DeploymentConfig;
  /** Declared capabilities that replace the probed ones in `reported` (see CapabilityDeclarations). */
  capabilities?: CapabilityDeclarations;
  /** Drift windows and field samples; unset: tracking on with the reporter's defaults, no field samples. */
  drift?: DriftConfig;
  logLevel: LogLevel;
}

export interface DeploymentConfig {
  /** Keep the replaced version loaded after a switch: auto (memory allowing), on, off. */
  standby?: StandbyPolicy;
  /** How long a replaced version stays loaded (a health window may keep it longer). */
  standbyKeepSec?: number;
  /** Longest a switch waits for a local update lock when the assignment sets no limit. */
  maxDeferSec?: number;
}

export interface OutboxConfig {
  maxBytes?: number;
  maxAgeMs?: number;
  drainPerSecond?: number;
  maxInFlight?: number;
}

export interface EnrollConfig {
  hubUrl: string;
  token: string;
  name?: string;
  labels: Labels;
  stateDir: string;
  /** How long the enrollment call may take, connection and answer together (default 30 s). */
  timeoutMs?: number;
  /** PEM file of a private CA to trust for the enrollment call (and to pin when the hub sends none). */
  caFile?: string;
  logLevel: LogLevel;
}

export type Command = { command: 'run'; config: RunConfig } | { command: 'enroll'; config: EnrollConfig } | { command: 'help' };

export const USAGE = `usage:
  edgefleet-agent enroll --hub <apiUrl> --token <token> (or env EDGEFLEET_ENROLL_TOKEN) [--name N] [--label k=v ...] [--state-dir DIR] [--timeout SECONDS] [--ca FILE]
  edgefleet-agent run [--state-dir DIR] [--socket PATH] [--tcp-port N] [--workers N] [--threads N]
                      [--standby auto|on|off] [--standby-keep-sec N] [--max-defer-sec N]
                      [--accelerators A,B] [--execution-providers A,B] [--cpu-flags A,B]
                      [--drift on|off] [--drift-window-sec N] [--drift-window-requests N]
                      [--field-samples-random N] [--field-samples-hard N] [--hard-example-margin X]
  (declared capability lists replace the probed ones in what the agent reports; "none" declares an empty list)
env: EDGEFLEET_AGENT_STATE_DIR, EDGEFLEET_AGENT_SOCKET, EDGEFLEET_AGENT_TCP_PORT, EDGEFLEET_AGENT_WORKERS,
     EDGEFLEET_AGENT_THREADS, EDGEFLEET_TELEMETRY_INTERVAL_MS, EDGEFLEET_LOG_LEVEL,
     EDGEFLEET_OUTBOX_MAX_BYTES, EDGEFLEET_OUTBOX_MAX_AGE_MS, EDGEFLEET_OUTBOX_DRAIN_PER_SECOND, EDGEFLEET_OUTBOX_MAX_IN_FLIGHT,
     EDGEFLEET_STANDBY, EDGEFLEET_STANDBY_KEEP_SEC, EDGEFLEET_MAX_DEFER_SEC,
     EDGEFLEET_ACCELERATORS, EDGEFLEET_EXECUTION_PROVIDERS, EDGEFLEET_CPU_FLAGS,
     EDGEFLEET_DRIFT (on|off), EDGEFLEET_DRIFT_WINDOW_SEC (60, at least 10), EDGEFLEET_DRIFT_WINDOW_REQUESTS (5000),
     EDGEFLEET_FIELD_SAMPLES_RANDOM (0 per window, at most 20), EDGEFLEET_FIELD_SAMPLES_HARD (0 per window, at most 20), EDGEFLEET_HARD_EXAMPLE_MARGIN (0.1)`;

const DEFAULT_STATE_DIR = '/var/lib/edgefleet';
const DEFAULT_SOCKET = '/run/edgefleet/agent.sock';
export const DEFAULT_ENROLL_TIMEOUT_MS = 30_000;
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const labelsCheck = Compile(Labels);

type Env = Record<string, string | undefined>;

function bad(message: string): never {
  throw new EdgefleetError('BAD_REQUEST', message);
}

function integer(value: string | undefined, what: string, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) bad(`${what} is "${value}", expected an integer from ${min} to ${max}`);
  return n;
}

function seconds(value: string | undefined, what: string, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) bad(`${what} is "${value}", expected a number of seconds from ${min} to ${max}`);
  return n;
}

function logLevel(value: string | undefined): LogLevel {
  const level = (value ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) bad(`EDGEFLEET_LOG_LEVEL is "${value}", expected one of ${LOG_LEVELS.join(', ')}`);
  return level as LogLevel;
}

export function parseLabels(pairs: readonly string[]): Labels {
  const labels: Labels = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq) : '';
    const value = pair.slice(eq + 1);
    if (eq <= 0 || !labelsCheck.Check({ [key]: value })) {
      bad(`label "${pair}" is not key=value with a key of 1-63 of [A-Za-z0-9_.-] and a value of at most 255 characters`);
    }
    labels[key] = value;
  }
  return labels;
}

function outboxConfig(env: Env): { outbox?: OutboxConfig } {
  const entries = Object.entries({
    maxBytes: integer(env.EDGEFLEET_OUTBOX_MAX_BYTES, 'EDGEFLEET_OUTBOX_MAX_BYTES', 64 * 1024, 2 ** 40),
    maxAgeMs: integer(env.EDGEFLEET_OUTBOX_MAX_AGE_MS, 'EDGEFLEET_OUTBOX_MAX_AGE_MS', 60_000, 365 * 24 * 3600 * 1000),
    drainPerSecond: integer(env.EDGEFLEET_OUTBOX_DRAIN_PER_SECOND, 'EDGEFLEET_OUTBOX_DRAIN_PER_SECOND', 1, 100_000),
    maxInFlight: integer(env.EDGEFLEET_OUTBOX_MAX_IN_FLIGHT, 'EDGEFLEET_OUTBOX_MAX_IN_FLIGHT', 1, 1000),
  }).filter(([, v]) => v !== undefined);
  return entries.length === 0 ? {} : { outbox: Object.fromEntries(entries) as OutboxConfig };
}

const STANDBY_POLICIES = ['auto', 'on', 'off'] as const;

function deploymentConfig(values: { standby?: string; 'standby-keep-sec'?: string; 'max-defer-sec'?: string }, env: Env): { deployment?: DeploymentConfig } {
  const standby = values.standby ?? env.EDGEFLEET_STANDBY;
  if (standby !== undefined && standby !== '' && !(STANDBY_POLICIES as readonly string[]).includes(standby)) {
    bad(`standby (EDGEFLEET_STANDBY) is "${standby}", expected one of ${STANDBY_POLICIES.join(', ')}`);
  }
  const entries = Object.entries({
    standby: standby === '' ? undefined : (standby as DeploymentConfig['standby']),
    standbyKeepSec: integer(values['standby-keep-sec'] ?? env.EDGEFLEET_STANDBY_KEEP_SEC, 'standby keep time (EDGEFLEET_STANDBY_KEEP_SEC)', 0, 7 * 24 * 3600),
    maxDeferSec: integer(values['max-defer-sec'] ?? env.EDGEFLEET_MAX_DEFER_SEC, 'max defer time (EDGEFLEET_MAX_DEFER_SEC)', 0, 7 * 24 * 3600),
  }).filter(([, v]) => v !== undefined);
  return entries.length === 0 ? {} : { deployment: Object.fromEntries(entries) as DeploymentConfig };
}

/** The declarable lists: their flag, their environment variable, and their bounds in the Capabilities schema. */
const DECLARABLE = {
  accelerators: { flag: 'accelerators', env: 'EDGEFLEET_ACCELERATORS', schema: Capabilities.properties.accelerators },
  executionProviders: { flag: 'execution-providers', env: 'EDGEFLEET_EXECUTION_PROVIDERS', schema: Capabilities.properties.executionProviders },
  cpuFlags: { flag: 'cpu-flags', env: 'EDGEFLEET_CPU_FLAGS', schema: Capabilities.properties.cpuFlags },
} as const;
type DeclarableFlag = (typeof DECLARABLE)[keyof typeof DECLARABLE]['flag'];

const CAPABILITY_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

/**
 * A declared list: names separated by commas or spaces (as /proc/cpuinfo lists flags), duplicates
 * dropped, "none" for an empty list; unset or empty leaves the probed value. Bounded as the
 * reported document's schema bounds it, so a declaration can never make `reported` invalid.
 */
function capabilityList(value: string | undefined, what: string, bounds: { maxItems: number; maxLength: number }): string[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (value.trim().toLowerCase() === 'none') return [];
  const names = [...new Set(value.split(/[\s,]+/).filter(Boolean))];
  if (names.length > bounds.maxItems) bad(`${what} lists ${names.length} names, expected at most ${bounds.maxItems}`);
  const wrong = names.find((n) => n.length > bounds.maxLength || !CAPABILITY_NAME.test(n));
  if (wrong !== undefined) {
    bad(`${what} has "${wrong.length > 80 ? `${wrong.slice(0, 80)}…` : wrong}", expected names of 1 to ${bounds.maxLength} characters of [A-Za-z0-9_.+-] separated by commas`);
  }
  return names;
}

function capabilitiesConfig(values: Partial<Record<DeclarableFlag, string>>, env: Env): { capabilities?: CapabilityDeclarations } {
  const entries = Object.entries(DECLARABLE)
    .map(([key, d]) => {
      // TypeBox keeps the JSON Schema keywords on the schema object; its static types do not list them.
      const schema = d.schema as unknown as { maxItems: number; items: { maxLength: number } };
      const bounds = { maxItems: schema.maxItems, maxLength: schema.items.maxLength };
      const raw = values[d.flag] ?? env[d.env];
      // EDGEFLEET_EXECUTION_PROVIDERS also orders the providers sessions try (execution-providers.ts): "auto" declares nothing.
      const value = raw?.trim().toLowerCase() === 'auto' ? undefined : raw;
      return [key, capabilityList(value, `${key} (--${d.flag}, ${d.env})`, bounds)] as const;
    })
    .filter(([, v]) => v !== undefined);
  return entries.length === 0 ? {} : { capabilities: Object.fromEntries(entries) as CapabilityDeclarations };
}

function runConfig(argv: string[], env: Env): RunConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      'state-dir': { type: 'string' },
      socket: { type: 'string' },
      'tcp-port': { type: 'string' },
      workers: { type: 'string' },
      threads: { type: 'string' },
      standby: { type: 'string' },
      'standby-keep-sec': { type: 'string' },
      'max-defer-sec': { type: 'string' },
      accelerators: { type: 'string' },
      'execution-providers': { type: 'string' },
      'cpu-flags': { type: 'string' },
      ...DRIFT_OPTIONS,
    },
    strict: true,
  });
  const workers = integer(values.workers ?? env.EDGEFLEET_AGENT_WORKERS, 'workers (EDGEFLEET_AGENT_WORKERS)', 1, 64);
  const threads = integer(values.threads ?? env.EDGEFLEET_AGENT_THREADS, 'threads (EDGEFLEET_AGENT_THREADS)', 1, 64);
  const tcpPort = integer(values['tcp-port'] ?? env.EDGEFLEET_AGENT_TCP_PORT, 'tcp port (EDGEFLEET_AGENT_TCP_PORT)', 0, 65535);
  return {
    stateDir: values['state-dir'] ?? env.EDGEFLEET_AGENT_STATE_DIR ?? DEFAULT_STATE_DIR,
    socketPath: values.socket ?? env.EDGEFLEET_AGENT_SOCKET ?? DEFAULT_SOCKET,
    ...(tcpPort === undefined ? {} : { tcpPort }),
    ...(workers === undefined ? {} : { workers }),
    ...(threads === undefined ? {} : { threads }),
    telemetryIntervalMs:
      integer(env.EDGEFLEET_TELEMETRY_INTERVAL_MS, 'EDGEFLEET_TELEMETRY_INTERVAL_MS', 100, 24 * 3600 * 1000) ?? 10_000,
    ...outboxConfig(env),
    ...deploymentConfig(values, env),
    ...capabilitiesConfig(values, env),
    ...driftConfig(values, env),
    logLevel: logLevel(env.EDGEFLEET_LOG_LEVEL),
  };
}

function enrollConfig(argv: string[], env: Env): EnrollConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      hub: { type: 'string' },
      token: { type: 'string' },
      name: { type: 'string' },
      label: { type: 'string', multiple: true },
      'state-dir': { type: 'string' },
      timeout: { type: 'string' },
      ca: { type: 'string' },
    },
    strict: true,
  });
  if (!values.hub) bad('enroll needs --hub <apiUrl>, e.g. --hub http://hub.local:8080');
  // EDGEFLEET_ENROLL_TOKEN keeps the single-use token out of ps (install.sh passes it so).
  values.token ??= env.EDGEFLEET_ENROLL_TOKEN;
  if (!values.token) bad('enroll needs --token <enrollment token> (create one with POST /api/v1/enrollment-tokens)');
  // "hub.local:8080" parses too, with "hub.local:" as its scheme: only http(s) reaches a hub.
  const scheme = URL.canParse(values.hub) ? new URL(values.hub).protocol : undefined;
  if (scheme !== 'http:' && scheme !== 'https:') bad(`--hub is "${values.hub}", expected the hub's API URL such as http://hub.local:8080`);
  if (values.ca && scheme !== 'https:') bad(`--ca ${values.ca} is for a hub served over TLS: expected an https:// --hub, got "${values.hub}"`);
  return {
    hubUrl: values.hub.replace(/\/+$/, ''),
    token: values.token,
    ...(values.name ? { name: values.name } : {}),
    labels: parseLabels(values.label ?? []),
    stateDir: values['state-dir'] ?? env.EDGEFLEET_AGENT_STATE_DIR ?? DEFAULT_STATE_DIR,
    ...(values.ca ? { caFile: values.ca } : {}),
    timeoutMs: Math.round(1000 * (seconds(values.timeout, '--timeout', 0.1, 3600) ?? DEFAULT_ENROLL_TIMEOUT_MS / 1000)),
    logLevel: logLevel(env.EDGEFLEET_LOG_LEVEL),
  };
}

/** Parses `argv` (without node and the script) into a command with its checked config. */
export function parseCommand(argv: string[], env: Env = process.env): Command {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return { command: 'run', config: runConfig(rest, env) };
      case 'enroll':
        return { command: 'enroll', config: enrollConfig(rest, env) };
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return { command: 'help' };
      default:
        return bad(`unknown command "${command}", expected "enroll" or "run"`);
    }
  } catch (err) {
    if (err instanceof EdgefleetError) throw err;
    // parseArgs errors (unknown flag, missing value) name the flag already.
    throw new EdgefleetError('BAD_REQUEST', (err as Error).message);
  }
}
