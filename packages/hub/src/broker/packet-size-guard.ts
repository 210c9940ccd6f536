/**
 * Follows the MQTT framing of one connection's inbound bytes and reports the first packet whose
 * announced size is over the limit. aedes (1.x) has no packet size limit: it buffers a whole
 * packet (up to MQTT's 256 MB) before any hook sees it, so the size has to be read from the fixed
 * header, as the bytes arrive, to close the connection before the packet is buffered.
 */
export interface PacketSizeGuard {
  /** Feeds the next chunk; returns (a lower bound of) the announced size of an oversized packet, or null while all are within the limit. */
  push(chunk: Uint8Array): number | null;
}

export function createPacketSizeGuard(maxBytes: number): PacketSizeGuard {
  // The fixed header: one type byte, then the remaining length in 1–4 bytes of 7 bits each.
  let phase: 'type' | 'length' | 'body' = 'type';
  let length = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  let bodyLeft = 0;
  return {
    push(chunk) {
      let i = 0;
      while (i < chunk.length) {
        if (phase === 'body') {
          const skip = Math.min(bodyLeft, chunk.length - i);
          bodyLeft -= skip;
          i += skip;
          if (bodyLeft === 0) phase = 'type';
          continue;
        }
        const byte = chunk[i++]!;
        if (phase === 'type') {
          phase = 'length';
          length = 0;
          multiplier = 1;
          lengthBytes = 0;
          continue;
        }
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        lengthBytes++;
        if (length > maxBytes) return length;
        if (byte & 0x80 && lengthBytes < 4) continue;
        // A malformed 5th length byte is the MQTT parser's to refuse; the guard only measures.
        bodyLeft = length;
        phase = bodyLeft === 0 ? 'type' : 'body';
      }
      return null;
    },
  };
}
