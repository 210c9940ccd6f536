// Closed-loop HTTP load over a Unix socket, run in its own process (forked by run.mjs) so that the
// client's CPU is not counted against the server's event loop. Receives one job per IPC message and
// answers { count, errors, seconds, p50, p99 } (ms) — latency is request start to last response byte.
import { Agent, request } from 'node:http';

function percentile(sorted, q) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function once(agent, job, body) {
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

async function run(job) {
  const body = Buffer.from(job.body, 'base64');
  const agent = new Agent({ keepAlive: true, maxSockets: job.concurrency });
  const latencies = [];
  let errors = 0;
  let lastError;
  // Warm-up: connections open, JIT warm, workers' arenas sized.
  const warmUntil = performance.now() + job.warmupMs;
  const loop = async (until, record) => {
    while (performance.now() < until) {
      const t0 = performance.now();
      try {
        await once(agent, job, body);
        if (record) latencies.push(performance.now() - t0);
      } catch (err) {
        errors++;
        lastError = err.message;
      }
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, () => loop(warmUntil, false)));
  const start = performance.now();
  await Promise.all(Array.from({ length: job.concurrency }, () => loop(start + job.durationMs, true)));
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
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
