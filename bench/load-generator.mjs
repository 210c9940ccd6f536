// Closed-loop HTTP/1.1 load over a Unix socket, run in its own process (forked by run.mjs) so that the
// client's CPU is not counted against the server's event loop. Receives one job per IPC message and
// answers { count, errors, seconds, p50, p99 } (ms) — latency is request start to last response byte.
//
// Like wrk, each connection writes one pre-encoded request (headers + body) and reads the response by
// its Content-Length, without node:http's per-request objects: on a 2-core box the client shares the
// cores with the server, and node:http's client alone added ~0.1 ms per request and CPU under load.
// BENCH_CLIENT=http (in the job as `client: 'http'`) uses node:http instead, for comparison.
import { Agent, request } from 'node:http';
import { createConnection } from 'node:net';

function percentile(sorted, q) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** node:http client: one request, resolves with the response byte count. */
function httpOnce(agent, job, body) {
  return new Promise((resolve, reject) => {
    const req = request({ agent, socketPath: job.socketPath, method: 'POST', path: job.path, headers: { ...job.headers, 'content-length': body.byteLength } }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const HEADER_END = Buffer.from('\r\n\r\n');

/** A keep-alive connection that sends `wire` and resolves each call with the response's byte count. */
function rawConnection(socketPath, wire) {
  const sock = createConnection(socketPath);
  sock.setNoDelay?.(true);
  let pending;
  let chunks = [];
  let buffered = 0;
  let need = -1; // total bytes of the current response once its header is parsed
  let status = 0;
  const fail = (err) => {
    if (pending) pending.reject(err);
    pending = undefined;
  };
  sock.on('error', fail);
  sock.on('close', () => fail(new Error('connection closed')));
  sock.on('data', (chunk) => {
    chunks.push(chunk);
    buffered += chunk.length;
    for (;;) {
      if (need < 0) {
        const head = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        chunks = [head];
        const end = head.indexOf(HEADER_END);
        if (end < 0) return;
        const text = head.toString('latin1', 0, end);
        status = Number(text.slice(9, 12));
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(text);
        if (!m) return fail(new Error('response without content-length'));
        need = end + 4 + Number(m[1]);
      }
      if (buffered < need) return;
      const rest = buffered > need ? Buffer.concat(chunks).subarray(need) : undefined;
      const bytes = need;
      chunks = rest ? [rest] : [];
      buffered = rest ? rest.length : 0;
      need = -1;
      const p = pending;
      pending = undefined;
      if (p) status === 200 ? p.resolve(bytes) : p.reject(new Error(`HTTP ${status}`));
      if (!rest) return;
    }
  });
  return {
    once: () =>
      new Promise((resolve, reject) => {
        pending = { resolve, reject };
        sock.write(wire);
      }),
    close: () => sock.destroy(),
  };
}

async function run(job) {
  const body = Buffer.from(job.body, 'base64');
  const useHttp = (job.client ?? process.env.BENCH_CLIENT) === 'http';
  const agent = useHttp ? new Agent({ keepAlive: true, maxSockets: job.concurrency }) : undefined;
  const head = [`POST ${job.path} HTTP/1.1`, 'host: localhost', 'connection: keep-alive', `content-length: ${body.byteLength}`];
  for (const [k, v] of Object.entries(job.headers)) head.push(`${k}: ${v}`);
  const wire = Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
  const conns = useHttp ? [] : Array.from({ length: job.concurrency }, () => rawConnection(job.socketPath, wire));
  const latencies = [];
  let errors = 0;
  let lastError;
  // Warm-up: connections open, JIT warm, workers' arenas sized.
  const warmUntil = performance.now() + job.warmupMs;
  const loop = async (k, until, record) => {
    while (performance.now() < until) {
      const t0 = performance.now();
      try {
        await (useHttp ? httpOnce(agent, job, body) : conns[k].once());
        if (record) latencies.push(performance.now() - t0);
      } catch (err) {
        errors++;
        lastError = err.message;
        if (!useHttp) conns[k] = rawConnection(job.socketPath, wire);
      }
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, (_, k) => loop(k, warmUntil, false)));
  const start = performance.now();
  await Promise.all(Array.from({ length: job.concurrency }, (_, k) => loop(k, start + job.durationMs, true)));
  const seconds = (performance.now() - start) / 1000;
  agent?.destroy();
  for (const c of conns) c.close();
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, errors, lastError, seconds, rps: latencies.length / seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

process.on('message', async (job) => {
  if (job === 'exit') process.exit(0);
  try {
    process.send({ ok: true, result: await run(job) });
  } catch (err) {
    process.send({ ok: false, error: err.message });
  }
});
