import { isIPv6 } from 'node:net';
import { EdgefleetError } from '@edgefleet/shared';

/** A DNS name or IPv4 address: labels of letters, digits, `-` and `_`, dot-separated. */
const REG_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const WITH_PORT = /^(\[[^\]]*\]|[^:[\]]*)(?::([0-9]{1,5}))?$/;

export interface HostHeader {
  /** `name`, `1.2.3.4` or `[::1]` (brackets kept, ready for a URL). */
  hostname: string;
  /** hostname[:port], as it goes into a URL. */
  host: string;
}

/**
 * Checks a request's Host header before it goes into the URLs handed to a device: only
 * `hostname[:port]` (IPv6 in brackets), so `x@evil.example`, paths, queries or spaces cannot turn
 * the answer into someone else's URL. A bad one is the client's error (400).
 */
export function parseHostHeader(raw: string): HostHeader {
  const bad = (why: string) =>
    new EdgefleetError('BAD_REQUEST', `Host header "${raw.slice(0, 100)}" is not a valid host[:port] (${why}): expected e.g. "hub.example:8080" or "[::1]:8080"`);
  if (raw.length === 0 || raw.length > 261) throw bad('empty or too long');
  const m = WITH_PORT.exec(raw);
  if (!m) throw bad('only a hostname and an optional port are allowed');
  const [, name, port] = m as unknown as [string, string, string | undefined];
  if (name.startsWith('[')) {
    if (!isIPv6(name.slice(1, -1))) throw bad('the bracketed part is not an IPv6 address');
  } else if (!REG_NAME.test(name)) {
    throw bad('the hostname may hold only letters, digits, "-", "_" and dots');
  }
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw bad('the port is outside 1-65535');
  const hostname = name.toLowerCase();
  return { hostname, host: port === undefined ? hostname : `${hostname}:${Number(port)}` };
}
