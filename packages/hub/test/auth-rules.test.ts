import { describe, expect, it } from 'vitest';
import { addressKey } from '../src/auth/address-key.js';
import { csrfProblem, type RequestOrigin } from '../src/auth/csrf-check.js';
import { roleAllows } from '../src/auth/roles.js';
import { createAuthRateLimit } from '../src/broker/auth-rate-limit.js';
import { parseHostHeader } from '../src/enrollment/host-header.js';

describe('operator roles', () => {
  it('orders viewer < operator < admin', () => {
    expect(roleAllows('viewer', 'viewer')).toBe(true);
    expect(roleAllows('viewer', 'operator')).toBe(false);
    expect(roleAllows('operator', 'viewer')).toBe(true);
    expect(roleAllows('operator', 'admin')).toBe(false);
    expect(roleAllows('admin', 'operator')).toBe(true);
  });
});

describe('csrfProblem', () => {
  const base: RequestOrigin = { method: 'POST', protocol: 'http', host: 'hub:8080', origin: 'http://hub:8080', referer: undefined, contentType: 'application/json', hasBody: true };
  it('lets same-origin JSON writes and every read through', () => {
    expect(csrfProblem(base)).toBeUndefined();
    expect(csrfProblem({ ...base, contentType: 'application/json; charset=utf-8' })).toBeUndefined();
    expect(csrfProblem({ ...base, hasBody: false, contentType: undefined })).toBeUndefined();
    expect(csrfProblem({ ...base, origin: undefined, referer: 'http://hub:8080/index.html' })).toBeUndefined();
    expect(csrfProblem({ ...base, method: 'GET', origin: 'http://evil', contentType: 'text/plain' })).toBeUndefined();
  });
  it('refuses another port, scheme or host, a missing origin and form bodies', () => {
    expect(csrfProblem({ ...base, origin: 'http://hub:8081' })).toMatch(/not the hub's own origin/);
    expect(csrfProblem({ ...base, origin: 'https://hub:8080' })).toMatch(/not the hub's own origin/);
    expect(csrfProblem({ ...base, origin: 'null' })).toMatch(/not the hub's own origin/);
    expect(csrfProblem({ ...base, origin: undefined, referer: 'http://evil.example/x' })).toMatch(/not the hub's own origin/);
    expect(csrfProblem({ ...base, origin: undefined })).toMatch(/needs an Origin/);
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
      expect(csrfProblem({ ...base, contentType: type }), String(type)).toMatch(/JSON body/);
    }
    expect(csrfProblem({ ...base, hasBody: false, contentType: 'text/plain' })).toMatch(/JSON body or none/);
  });
});

describe('parseHostHeader', () => {
  it('accepts hostname[:port] and bracketed IPv6', () => {
    expect(parseHostHeader('Hub.Example:8080')).toEqual({ hostname: 'hub.example', host: 'hub.example:8080' });
    expect(parseHostHeader('10.0.0.5')).toEqual({ hostname: '10.0.0.5', host: '10.0.0.5' });
    expect(parseHostHeader('[::1]:80')).toEqual({ hostname: '[::1]', host: '[::1]:80' });
    expect(parseHostHeader('edge_hub')).toEqual({ hostname: 'edge_hub', host: 'edge_hub' });
  });
  it('refuses userinfo, paths, queries, bad ports and bad IPv6', () => {
    for (const bad of ['x@evil.example', 'evil.example/path', 'a?b', 'a#b', 'a b', 'a:0', 'a:65536', 'a:', ':80', '[::1', '[nope]:80', '::1', '', 'a..b', '-a.example', 'a\\b']) {
      expect(() => parseHostHeader(bad), bad).toThrow(/Host header/);
    }
  });
});

describe('addressKey', () => {
  it('keeps IPv4 (also IPv4-mapped) addresses apart and groups IPv6 by /64', () => {
    expect(addressKey('10.0.0.1')).toBe('10.0.0.1');
    expect(addressKey('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(addressKey('::FFFF:10.0.0.2')).toBe('10.0.0.2');
    expect(addressKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0DB8:0001:0002:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('64:ff9b::10.0.0.1')).toBe('64:ff9b:0:0::/64');
    expect(addressKey('unknown')).toBe('unknown');
  });
});

describe('broker auth rate limit', () => {
  it('blocks an address after its failures until the window ends, other addresses untouched', () => {
    let now = 0;
    const limit = createAuthRateLimit({ maxFailures: 3, windowMs: 1000 }, () => now);
    for (let i = 0; i < 3; i++) {
      expect(limit.blocked('a')).toBe(false);
      limit.failed('a');
    }
    expect(limit.blocked('a')).toBe(true);
    expect(limit.blocked('b')).toBe(false);
    now = 999;
    expect(limit.blocked('a')).toBe(true);
    now = 1000;
    expect(limit.blocked('a')).toBe(false);
  });
  it('counts the addresses of one IPv6 /64 together', () => {
    const limit = createAuthRateLimit({ maxFailures: 2, windowMs: 1000 }, () => 0);
    limit.failed('2001:db8:1:2::1');
    limit.failed('2001:db8:1:2::2');
    expect(limit.blocked('2001:db8:1:2::3')).toBe(true);
    expect(limit.blocked('2001:db8:1:3::1')).toBe(false);
  });
  it('tracks a bounded number of addresses, forgetting the oldest', () => {
    const limit = createAuthRateLimit({ maxFailures: 1, windowMs: 1000, maxAddresses: 2 }, () => 0);
    limit.failed('a');
    limit.failed('b');
    limit.failed('c');
    expect(limit.blocked('a')).toBe(false);
    expect(limit.blocked('b')).toBe(true);
    expect(limit.blocked('c')).toBe(true);
  });
});
