import { isIPv4, isIPv6 } from 'node:net';

const MAPPED_IPV4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** An IPv4 address in dotted form as two hextets. */
function ipv4Hextets(v4: string): string[] {
  const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
}

/** The eight hextets of an IPv6 address, `::` expanded, without leading zeros. */
function hextets(ip: string): string[] {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const groups = (s: string) => (s === '' ? [] : s.split(':').flatMap((g) => (g.includes('.') ? ipv4Hextets(g) : [g])));
  const before = groups(head);
  const after = tail === undefined ? [] : groups(tail);
  const zeros: string[] = Array.from({ length: 8 - before.length - after.length }, () => '0');
  return [...before, ...zeros, ...after].map((g) => parseInt(g, 16).toString(16));
}

/**
 * The key failed attempts from a source address are counted under: IPv4 as it is (also when a
 * dual-stack listener reports it IPv4-mapped), IPv6 by its /64. One host usually holds a whole /64
 * and could otherwise take a fresh address for every guess.
 */
export function addressKey(address: string): string {
  const mapped = MAPPED_IPV4.exec(address);
  if (mapped) return mapped[1]!;
  if (isIPv4(address)) return address;
  const plain = address.split('%')[0]!;
  if (!isIPv6(plain)) return address;
  return `${hextets(plain).slice(0, 4).join(':')}::/64`;
}
