/** A listen address as a client would dial it: wildcards become loopback, IPv6 literals get brackets. */
export function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
