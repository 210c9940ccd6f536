import { readFile, stat } from 'node:fs/promises';
import { printable } from './terminal-text.js';

/** A failure fleetctl reports as `fleetctl: <message>` with exit code 1. */
export class CliError extends Error {
  readonly exitCode: number = 1;
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/** An argument commander let through but fleetctl cannot use: exit code 2, like commander's own usage errors. */
export class UsageError extends CliError {
  override readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Connection {
  hub: string;
  token: string | undefined;
}

export interface ConnectionSources {
  flags: { hub?: string | undefined; token?: string | undefined };
  env: { hub?: string | undefined; token?: string | undefined };
  /** The config file's contents, already read (undefined when there is none). */
  file: { hub?: string | undefined; token?: string | undefined } | undefined;
  filePath: string;
}

/** Flags win over the environment, the environment over the config file. */
export function resolveConnection(s: ConnectionSources): Connection {
  const hub = (s.flags.hub ?? s.env.hub ?? s.file?.hub)?.trim();
  if (!hub) throw new CliError(`no hub URL: pass --hub <url>, set EDGEFLEET_HUB_URL, or write {"hub": "http://…:8080", "token": "…"} to ${s.filePath}`);
  const token = s.flags.token ?? s.env.token ?? s.file?.token;
  return { hub: hubBase(hub), token: token === undefined ? undefined : checkedToken(token) };
}

/**
 * The hub's base URL: http(s), with a path only when a proxy mounts the hub under one. What would
 * be dropped or doubled silently (user:password, ?query, #fragment, a path ending in /api/v1) is
 * refused with what was expected.
 */
function hubBase(hub: string): string {
  const example = 'expected e.g. http://hub.example:8080';
  let url: URL;
  try {
    url = new URL(hub);
  } catch {
    throw new CliError(`hub URL "${printable(hub)}" is not a URL; ${example}`);
  }
  // "hub.example:8080" parses as the scheme "hub.example:"; "localhost:8080" likewise.
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`hub URL "${printable(hub)}" must start with http:// or https://; ${example}`);
  if (url.username || url.password) throw new CliError(`hub URL "${url.host}" must not carry a user or password; pass the operator token with --token or EDGEFLEET_TOKEN`);
  if (url.search || url.hash) throw new CliError(`hub URL "${printable(hub)}" must not have a ?query or #fragment; ${example}`);
  const path = url.pathname.replace(/\/+$/, '');
  if (/\/api(\/v1)?$/.test(path)) throw new CliError(`hub URL "${printable(hub)}" ends in ${path.endsWith('/v1') ? '/api/v1' : '/api'}; give the hub's base URL (fleetctl adds /api/v1), ${example}`);
  return url.origin + path;
}

/**
 * A token goes into the Authorization header: surrounding whitespace (the newline of `echo … > file`)
 * is dropped; a control or non-ASCII character inside is refused, without echoing the secret.
 */
function checkedToken(token: string): string {
  const trimmed = token.trim();
  if (!/^[\x20-\x7e]+$/.test(trimmed)) throw new CliError('the operator token is empty or holds newlines, control or non-ASCII characters, which a token does not have; expected the token as fleetctl api-tokens create printed it');
  return trimmed;
}

/** The config file `{hub, token}`; a missing file is no config, a malformed one is an error naming it. */
export async function readConfigFile(path: string): Promise<ConnectionSources['file']> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${path} is not JSON (${(err as Error).message}); expected {"hub": "…", "token": "…"}`);
  }
  const isObject = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
  if (isObject && (parsed as Record<string, unknown>).token !== undefined) await refuseReadableByOthers(path);
  const field = (k: string): string | undefined => {
    const v = isObject ? (parsed as Record<string, unknown>)[k] : undefined;
    if (v !== undefined && typeof v !== 'string') throw new CliError(`${path}: "${k}" must be a string`);
    return v;
  };
  if (!isObject) throw new CliError(`${path} must hold an object {"hub": "…", "token": "…"}`);
  return { hub: field('hub'), token: field('token') };
}

/**
 * A token in a file others can read is a token others hold: refused, as ssh refuses a private key
 * with such modes, with the chmod that fixes it. Not checked on Windows, which has no such modes.
 */
async function refuseReadableByOthers(path: string): Promise<void> {
  if (process.platform === 'win32') return;
  const { mode } = await stat(path);
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(3, '0');
    throw new CliError(`${path} holds a token but is readable or writable by others (mode ${octal}); expected 600: run chmod 600 ${path}`);
  }
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  bytes?: Uint8Array;
}

export interface ApiClient {
  readonly hub: string;
  request<T>(method: string, path: string, opts?: RequestOptions): Promise<T>;
}

/** undici's "fetch failed" hides the reason in `cause` (an AggregateError when every address was refused). */
function causeText(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> } }).cause;
  return cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message ?? (err as Error).message;
}

/** The largest answer read: the hub's largest lists are a few MB; more is a wrong URL or a hostile server. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** The text each parsed answer came from, so `--json` prints the hub's JSON byte for byte (see rawJsonOf). */
const rawTexts = new WeakMap<object, string>();

/** The hub's JSON text of an answer `request` returned (undefined for anything else). */
export function rawJsonOf(data: unknown): string | undefined {
  return typeof data === 'object' && data !== null ? rawTexts.get(data) : undefined;
}

/** The body as text, refusing (and cancelling) past `limit` bytes. */
async function boundedText(res: Response, limit: number, what: string): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  const tooLarge = () => new CliError(`${what} answered more than ${limit} bytes; is the hub URL right?`);
  if (declared > limit) {
    await res.body?.cancel();
    throw tooLarge();
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface ApiClientOptions {
  fetchImpl?: typeof fetch;
  maxResponseBytes?: number;
}

/** fetch against `<hub>/api/v1…`: a JSON answer on 2xx, the hub's `{error, code}` as a CliError otherwise. */
export function createApiClient(conn: Connection, { fetchImpl = fetch, maxResponseBytes = MAX_RESPONSE_BYTES }: ApiClientOptions = {}): ApiClient {
  return {
    hub: conn.hub,
    async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
      const url = new URL(`${conn.hub}/api/v1${path}`);
      for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
      const headers: Record<string, string> = { accept: 'application/json' };
      if (conn.token) headers.authorization = `Bearer ${conn.token}`;
      let body: string | Uint8Array | undefined;
      if (opts.bytes) {
        headers['content-type'] = 'application/octet-stream';
        body = opts.bytes;
      } else if (opts.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(opts.json);
      }
      const what = `${method} ${url.pathname}`;
      let res: Response;
      let text: string;
      try {
        res = await fetchImpl(url, { method, headers, body });
        text = await boundedText(res, maxResponseBytes, what);
      } catch (err) {
        if (err instanceof CliError) throw err;
        throw new CliError(`cannot reach the hub at ${conn.hub} (${printable(causeText(err))})`);
      }
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = undefined;
      }
      if (res.ok) {
        if (parsed === undefined) {
          const type = res.headers.get('content-type')?.split(';')[0] ?? 'no content type';
          throw new CliError(`${what} answered ${res.status} with a body that is not JSON (${printable(type)}); is ${conn.hub} an edgefleet hub?`);
        }
        if (typeof parsed === 'object' && parsed !== null) rawTexts.set(parsed, text);
        return parsed as T;
      }
      const apiError = parsed as { error?: unknown; code?: unknown } | null | undefined;
      if (apiError && typeof apiError.error === 'string' && typeof apiError.code === 'string') throw new CliError(`${printable(apiError.error)} (${printable(apiError.code)})`);
      throw new CliError(`${what} answered HTTP ${res.status}${text ? `: ${printable(text.slice(0, 200))}` : ''}`);
    },
  };
}
