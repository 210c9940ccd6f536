// The few MQTT 3.1.1 packets a device sends and reads, encoded by hand for the hub-load generator.
// mqtt.js costs ~1.2 ms of generator CPU per connect here (0.09 ms for a socket and a pre-encoded
// CONNECT), so 10,000 mqtt.js clients take seconds just to *start* reconnecting: the storm would time
// the generator, not the hub. The bytes on the wire are the same as the agent's (MQTT 3.1.1, QoS 1).

export const PACKET = { CONNACK: 2, PUBLISH: 3, PUBACK: 4, SUBACK: 9, PINGRESP: 13 };
export const PINGREQ = Buffer.from([0xc0, 0x00]);

function varint(n) {
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** A length-prefixed field: 2-byte big-endian length, then the bytes. */
function field(value) {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const len = Buffer.allocUnsafe(2);
  len.writeUInt16BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

function packet(firstByte, parts) {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([firstByte]), varint(body.length), body]);
}

/** CONNECT with clean session, username/password and a QoS 1 retained will. */
export function encodeConnect({ clientId, username, password, keepalive, will }) {
  const flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02;
  const keep = Buffer.allocUnsafe(2);
  keep.writeUInt16BE(keepalive);
  return packet(0x10, [field('MQTT'), Buffer.from([4, flags]), keep, field(clientId), field(will.topic), field(will.payload), field(username), field(password)]);
}

/** QoS 1 PUBLISH; `topic` is the topic already encoded as a length-prefixed field. */
export function encodePublish(topicField, packetId, payload, retain = false) {
  const head = 2 + topicField.length + payload.length;
  const len = varint(head);
  const out = Buffer.allocUnsafe(1 + len.length + head);
  out[0] = 0x32 | (retain ? 1 : 0);
  len.copy(out, 1);
  let at = 1 + len.length;
  at += topicField.copy(out, at);
  out.writeUInt16BE(packetId, at);
  payload.copy(out, at + 2);
  return out;
}

export function encodeSubscribe(packetId, topics) {
  const id = Buffer.allocUnsafe(2);
  id.writeUInt16BE(packetId);
  return packet(0x82, [id, ...topics.flatMap((t) => [field(t), Buffer.from([1])])]);
}

export function encodePuback(packetId) {
  const out = Buffer.from([0x40, 0x02, 0, 0]);
  out.writeUInt16BE(packetId, 2);
  return out;
}

export { field as encodeField };

/** Splits a byte stream into packets: `onPacket(type, flags, body)` per complete packet. */
export function packetReader(onPacket) {
  let pending;
  return (chunk) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    for (;;) {
      if (buf.length < 2) break;
      let length = 0;
      let multiplier = 1;
      let i = 1;
      let complete = false;
      for (; i < 5 && i < buf.length; i++) {
        length += (buf[i] & 0x7f) * multiplier;
        multiplier *= 128;
        if ((buf[i] & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) break;
      const total = i + 1 + length;
      if (buf.length < total) break;
      onPacket(buf[0] >> 4, buf[0] & 0x0f, buf.subarray(i + 1, total));
      buf = buf.subarray(total);
    }
    pending = buf.length > 0 ? buf : undefined;
  };
}
