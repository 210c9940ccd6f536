import { describe, expect, it } from 'vitest';
import { connectionCap, softNofileLimit } from '../src/broker/connection-cap.js';

const limits = (soft: string, hard: string) => `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files     
Max locked memory         8388608              8388608              bytes     
`;

describe('connection cap (pure)', () => {
  it('reads the soft open-files limit', () => {
    expect(softNofileLimit(limits('20000', '1048576'))).toBe(20000);
    expect(softNofileLimit(limits('unlimited', 'unlimited'))).toBeUndefined();
    expect(softNofileLimit('garbage')).toBeUndefined();
  });

  it('caps below the fd limit with headroom, never above the configured cap, at least 64', () => {
    expect(connectionCap(15_000, limits('20000', '1048576'))).toEqual({ cap: 15_000, fdLimit: 20000 });
    expect(connectionCap(15_000, limits('10000', '1048576'))).toEqual({ cap: 9744, fdLimit: 10000 });
    expect(connectionCap(15_000, limits('1024', '4096')).cap).toBe(768);
    expect(connectionCap(15_000, limits('200', '4096')).cap).toBe(64);
  });

  it('keeps the configured cap when the limits are unreadable or unlimited', () => {
    expect(connectionCap(15_000, undefined)).toEqual({ cap: 15_000, fdLimit: undefined });
    expect(connectionCap(15_000, limits('unlimited', 'unlimited')).cap).toBe(15_000);
    expect(connectionCap(15_000, '').cap).toBe(15_000);
  });
});
