import { describe, expect, it } from 'vitest';
import { createPacketSizeGuard } from '../src/broker/packet-size-guard.js';

/** MQTT 3.1.1 remaining length: 7 bits a byte, high bit = more follows. */
function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

/** A QoS 1 PUBLISH as the wire has it (fixed header, topic, packet id, payload). */
function publish(bytes: number): Buffer {
  const topic = Buffer.from('ef/v1/dev/d/telemetry');
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, Buffer.from([0, 1]), Buffer.alloc(bytes)]);
  return Buffer.concat([Buffer.from([0x32, ...varint(body.length)]), body]);
}
const PINGREQ = Buffer.from([0xc0, 0x00]);

describe('packet size guard', () => {
  it('follows packets across chunk boundaries and passes those within the limit', () => {
    const guard = createPacketSizeGuard(1000);
    const stream = Buffer.concat([publish(10), PINGREQ, publish(900), publish(0)]);
    // Every split point, byte by byte, must give the same answer.
    for (let i = 0; i < stream.length; i += 7) expect(guard.push(stream.subarray(i, i + 7))).toBeNull();
  });

  it('reports an oversized packet from its header alone, with a multi-byte length', () => {
    const big = publish(5 * 1024 * 1024);
    const guard = createPacketSizeGuard(1024 * 1024);
    expect(guard.push(publish(100))).toBeNull();
    expect(guard.push(big.subarray(0, 5))).toBeGreaterThan(1024 * 1024);
  });
});
