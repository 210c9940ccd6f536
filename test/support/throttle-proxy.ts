import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';

export interface ThrottleProxy {
  /** http://127.0.0.1:port — handed to devices as the hub's public URL, so their downloads come through here. */
  url: string;
  port: number;
  /** The hub's HTTP port; known only once the hub (which needs this proxy's URL first) is up. */
  upstreamPort: number | undefined;
  /**
   * Takes the link down (every connection in flight is cut, new ones are refused) or brings it back.
   * Cutting matters when the hub dies: without it the bytes the dead hub had already handed to the
   * kernel (megabytes on loopback) would still trickle through.
   */
  setLink(up: boolean): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy to the hub's HTTP port that limits each connection's hub→client direction to
 * `bytesPerSecond`: a slow link for artifact downloads. It stays up while the hub behind it is killed
 * and restarted on the same port; `setLink(false)` makes it an unreachable artifact URL (connections
 * dropped) for as long as a test needs, whether or not the hub is up.
 */
export async function startThrottleProxy(bytesPerSecond: number): Promise<ThrottleProxy> {
  const sockets = new Set<Socket>();
  let upstreamPort: number | undefined;
  let linkUp = true;
  const tickMs = 50;
  const perTick = Math.max(1, Math.floor((bytesPerSecond * tickMs) / 1000));

  const server = createServer((client) => {
    if (upstreamPort === undefined || !linkUp) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: upstreamPort });
    sockets.add(client).add(upstream);
    const queue: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const cut = () => {
      if (timer) clearInterval(timer);
      timer = undefined;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    // Paced delivery: a fixed byte budget per tick; the hub is paused while bytes wait, so it sees
    // back-pressure as it would from a slow client.
    const drain = () => {
      let budget = perTick;
      while (budget > 0 && queue.length > 0) {
        const head = queue[0]!;
        const piece = head.subarray(0, budget);
        client.write(piece);
        budget -= piece.length;
        if (piece.length === head.length) queue.shift();
        else queue[0] = head.subarray(piece.length);
      }
      if (queue.length === 0) {
        clearInterval(timer);
        timer = undefined;
        if (upstream.readableEnded) client.end();
        else upstream.resume();
      }
    };
    upstream.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      upstream.pause();
      timer ??= setInterval(drain, tickMs);
    });
    upstream.on('end', () => {
      if (queue.length === 0 && !timer) client.end();
    });
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    client.on('end', () => upstream.end());
    upstream.on('error', cut);
    client.on('error', cut);
    upstream.on('close', () => {
      // Closed before its end was read (a reset): the client sees its download cut short.
      if (!upstream.readableEnded) cut();
    });
    client.on('close', cut);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get upstreamPort() {
      return upstreamPort;
    },
    set upstreamPort(value) {
      upstreamPort = value;
    },
    setLink(up) {
      linkUp = up;
      if (!up) for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
