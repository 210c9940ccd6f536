import { readFile, stat } from 'node:fs/promises';

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
  const hub = s.flags.hub ?? s.env.hub ?? s.file?.hub;
  if (!hub) throw new CliError(`no hub URL: pass --hub <url>, set EDGEFLEET_HUB_URL, or write {"hub": "http://…:8080", "token": "…"} to ${s.filePath}`);
  let url: URL;
  try {
    url = new URL(hub);
  } catch {
    throw new CliError(`hub URL "${hub}" is not a URL; expected e.g. http://hub.example:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`hub URL "${hub}" must be http:// or https://`);
  return { hub: url.origin + url.pathname.replace(/\/+$/, ''), token: s.flags.token ?? s.env.token ?? s.file?.token };
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

/** fetch against `<hub>/api/v1…`: a JSON answer on 2xx, the hub's `{error, code}` as a CliError otherwise. */
export function createApiClient(conn: Connection, fetchImpl: typeof fetch = fetch): ApiClient {
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
      let res: Response;
      try {
        res = await fetchImpl(url, { method, headers, body });
      } catch (err) {
        throw new CliError(`cannot reach the hub at ${conn.hub} (${causeText(err)})`);
      }
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = undefined;
      }
      if (res.ok) {
        if (parsed === undefined) throw new CliError(`${method} ${url.pathname} answered ${res.status} with a body that is not JSON`);
        return parsed as T;
      }
      const apiError = parsed as { error?: unknown; code?: unknown } | null | undefined;
      if (apiError && typeof apiError.error === 'string' && typeof apiError.code === 'string') throw new CliError(`${apiError.error} (${apiError.code})`);
      throw new CliError(`${method} ${url.pathname} answered HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`);
    },
  };
}
