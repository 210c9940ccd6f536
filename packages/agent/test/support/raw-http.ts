import { connect, type Socket } from 'node:net';

export interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Request body bytes written before the reply was complete. */
  bodyBytesSent: number;
}

/**
 * One HTTP/1.1 request over a raw socket, for bodies a normal client would insist on sending in full:
 * writes the head, then the body chunks from `body()` one at a time (waiting for the socket to take
 * each), and stops writing as soon as a complete reply has arrived.
 */
export function rawRequest(target: { socketPath: string } | { port: number }, head: string, body: () => Buffer | undefined): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket: Socket = 'socketPath' in target ? connect(target.socketPath) : connect(target.port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let sent = 0;
    let done = false;
    const finish = (reply: RawReply) => {
      done = true;
      socket.destroy();
      resolve(reply);
    };
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers['content-length'] ?? 0);
      if (received.byteLength - end - 4 < length) return;
      finish({ status: Number(statusLine!.split(' ')[1]), headers, body: received.subarray(end + 4, end + 4 + length).toString('utf8'), bodyBytesSent: sent });
    });
    socket.on('error', (err) => {
      if (!done) reject(err);
    });
    const pump = () => {
      while (!done) {
        const chunk = body();
        if (!chunk) return;
        sent += chunk.byteLength;
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    socket.once('connect', () => {
      socket.write(head);
      pump();
    });
  });
}
