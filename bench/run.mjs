// Socket inference benchmark: requests/s and p50/p99 through the agent's local API (createLocalApi +
// createModelRuntime from packages/agent/dist, a real Unix socket, the load generator in its own process)
// against raw in-process `session.run` in the same run. Prints a table and writes bench/results/*.json.
// Env: BENCH_SECONDS (per measurement, default 2.5), BENCH_WARMUP_MS (default 1500: with 400, V8's
// optimizing compiler was still busy with the HTTP path in the measured window), BENCH_BUSY=1 (a busy-loop
// process takes one core for the whole run: the pool shapes under outside CPU contention).
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { buildConvNet, buildMlp, decodeModel, readSignature } from '../packages/shared/dist/onnx/index.js';
import { createModelRuntime } from '../packages/agent/dist/inference/model-runtime.js';
import { createModelTable } from '../packages/agent/dist/inference/model-table.js';
import { createLocalApi } from '../packages/agent/dist/local-api/local-api.js';
import { loadGenerator, percentile, requestBody, sample } from './socket-load.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const { pino } = createRequire(join(here, '../packages/agent/package.json'))('pino');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2.5);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1500);
const logger = pino({ level: 'warn' });

const MODELS = {
  // Compute-bound: raw p50 ≥ 2 ms on a 2-core x64 box with default session options.
  conv: { bytes: buildConvNet({ channels: 3, size: 128, filters: [32, 64, 128, 256], classes: 10 }), input: 'image', shape: [1, 3, 128, 128] },
  tiny: { bytes: buildMlp({ inputSize: 16, hidden: [32], outputSize: 4 }), input: 'input', shape: [1, 16] },
};

/** Sequential in-process session.run for SECONDS: the baseline. */
async function raw(path, model, options) {
  const session = await ort.InferenceSession.create(path, options);
  const x = sample(model.shape);
  const feeds = () => ({ [model.input]: new ort.Tensor('float32', x, model.shape) });
  const warm = performance.now() + WARMUP_MS;
  while (performance.now() < warm) await session.run(feeds());
  const lat = [];
  const start = performance.now();
  while (performance.now() - start < SECONDS * 1000) {
    const t0 = performance.now();
    await session.run(feeds());
    lat.push(performance.now() - t0);
  }
  const seconds = (performance.now() - start) / 1000;
  await session.release();
  lat.sort((a, b) => a - b);
  return { count: lat.length, rps: lat.length / seconds, p50: percentile(lat, 0.5), p99: percentile(lat, 0.99) };
}

/** Closed-loop `model.infer` at `concurrency` in this process, no HTTP: the pool's own ceiling. */
async function inProcess(file, model, pool, concurrency) {
  const runtime = createModelRuntime({ ...pool, logger });
  try {
    const loaded = await runtime.load(file);
    const x = sample(model.shape);
    const lat = [];
    const loop = async (until, record) => {
      while (performance.now() < until) {
        const t0 = performance.now();
        await loaded.infer([{ name: model.input, datatype: 'FP32', shape: model.shape, data: x.slice() }]);
        if (record) lat.push(performance.now() - t0);
      }
    };
    const warm = performance.now() + WARMUP_MS;
    await Promise.all(Array.from({ length: concurrency }, () => loop(warm, false)));
    const start = performance.now();
    await Promise.all(Array.from({ length: concurrency }, () => loop(start + SECONDS * 1000, true)));
    const seconds = (performance.now() - start) / 1000;
    lat.sort((a, b) => a - b);
    return { count: lat.length, rps: lat.length / seconds, p50: percentile(lat, 0.5), p99: percentile(lat, 0.99) };
  } finally {
    await runtime.stop();
  }
}


async function socketRuns(gen, socketPath, name, model, cases, server) {
  const out = {};
  for (const [mode, concurrency] of cases) {
    const { body, headers } = requestBody(model, mode);
    server?.reset();
    const r = await gen.run({ socketPath, path: `/v2/models/${name}/infer`, body: body.toString('base64'), headers, concurrency, durationMs: SECONDS * 1000, warmupMs: WARMUP_MS });
    if (r.errors > 0) throw new Error(`${name} ${mode} c${concurrency}: ${r.errors} failed requests (${r.lastError})`);
    out[`${mode}-c${concurrency}`] = r;
    if (server) r.sessions = server.share()[name];
  }
  return out;
}

let servers = 0;
async function serve(dir, files, pool) {
  const runtime = createModelRuntime({ ...pool, logger });
  const table = createModelTable();
  const loaded = [];
  /** Runs on an adaptive pool's 1-thread session of worker 0, per model: `narrow.conv` / `runs.conv`. */
  const narrow = {};
  const runs = {};
  for (const f of files) {
    const model = await runtime.load(f);
    loaded.push(model);
    table.activate(model);
    narrow[f.name] = runs[f.name] = 0;
    model.events.on('dispatch', (d) => (runs[f.name]++, d.narrow && narrow[f.name]++));
  }
  const socketPath = join(dir, `agent-${servers++}.sock`);
  const api = createLocalApi({ socketPath, models: table, logger });
  await api.start();
  const stats = () => Object.fromEntries(loaded.map((m) => [m.name, m.stats()]));
  const share = () => Object.fromEntries(Object.keys(runs).map((n) => [n, { narrow: narrow[n], runs: runs[n] }]));
  const reset = () => Object.keys(runs).forEach((n) => (narrow[n] = runs[n] = 0));
  return { socketPath, shape: runtime.shape, stats, share, reset, stop: async () => (await api.stop(), await runtime.stop()) };
}

/** One extra row: `cases` against a server with `pool`, stored under `<mode>-c<n>-<suffix>`. */
async function variant(gen, dir, files, pool, suffix, name, cases, results) {
  const server = await serve(dir, files.filter((f) => f.name === name), pool);
  try {
    const rows = await socketRuns(gen, server.socketPath, name, MODELS[name], cases);
    for (const [key, v] of Object.entries(rows)) results.socket[name][`${key}-${suffix}`] = v;
  } finally {
    await server.stop();
  }
}

const fmt = (v, d = 2) => (typeof v === 'number' ? v.toFixed(d) : String(v));

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'ef-bench-socket-'));
  const gen = loadGenerator();
  const busy = process.env.BENCH_BUSY === '1' ? spawn(process.execPath, ['-e', 'for (;;);'], { stdio: 'ignore' }) : undefined;
  const started = Date.now();
  const results = { busy: busy !== undefined, machine: { cores: availableParallelism(), loadavg: loadavg(), node: process.version }, seconds: SECONDS, raw: {}, socket: {} };
  try {
    const files = [];
    for (const [name, m] of Object.entries(MODELS)) {
      const path = join(dir, `${name}.onnx`);
      await writeFile(path, m.bytes);
      files.push({ name, version: '1', sha256: '-', profile: 'fp32', path, ...readSignature(decodeModel(m.bytes)) });
      results.raw[name] = { default: await raw(path, m, {}), threads1: await raw(path, m, { intraOpNumThreads: 1 }) };
    }
    // The compute ceiling at concurrency 16 without HTTP: the pool in this process, the default (adaptive)
    // and both fixed shapes; the default at c1 too (the pool's own latency, without HTTP).
    results.raw.conv.pool16 = await inProcess(files[0], MODELS.conv, {}, 16);
    results.raw.conv.pool16x2x1 = await inProcess(files[0], MODELS.conv, { workers: 2, threads: 1 }, 16);
    results.raw.conv.pool16x1x2 = await inProcess(files[0], MODELS.conv, { workers: 1, threads: 2 }, 16);
    results.raw.conv.pool1 = await inProcess(files[0], MODELS.conv, {}, 1);
    const cases = [['binary', 1], ['binary', 16], ['json', 1], ['json', 16]];
    // The runtime's default pool shape for this machine (2 workers x 1 thread on 2 cores).
    const server = await serve(dir, files, {});
    results.defaultPool = server.shape;
    try {
      for (const name of Object.keys(MODELS)) results.socket[name] = await socketRuns(gen, server.socketPath, name, MODELS[name], cases, server);
      results.poolStats = server.stats();
    } finally {
      await server.stop();
    }
    // Alternatives to the default: one worker using both cores (latency-oriented), and the tiny model
    // without dynamic batching.
    await variant(gen, dir, files, { workers: 1, threads: 2 }, 'pool1x2', 'conv', [['binary', 1], ['binary', 16]], results);
    await variant(gen, dir, files, { workers: 2, threads: 1 }, 'pool2x1', 'conv', [['binary', 1], ['binary', 16]], results);
    await variant(gen, dir, files, { workers: 1, threads: 2 }, 'pool1x2', 'tiny', [['binary', 1], ['binary', 16]], results);
    await variant(gen, dir, files, { maxBatch: 1 }, 'nobatch', 'tiny', [['binary', 16]], results);
  } finally {
    gen.close();
    busy?.kill();
    await rm(dir, { recursive: true, force: true });
  }
  results.elapsedSeconds = (Date.now() - started) / 1000;
  report(results);
  await mkdir(join(here, 'results'), { recursive: true });
  const file = join(here, 'results', `socket-inference-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify(results, null, 2));
  console.log(`\nresults written to ${file}`);
}

function report(r) {
  console.log(`\nsocket inference bench — ${r.machine.cores} cores, node ${r.machine.node}, load avg at start ${r.machine.loadavg.map((l) => l.toFixed(2)).join(' ')}, ${r.seconds}s per row`);
  console.log(`server pool ${r.defaultPool} (the default here; fixed shapes are workers x intra-op threads) with dynamic batching unless noted; load generator (raw keep-alive HTTP/1.1 client${process.env.BENCH_CLIENT === 'http' ? ', here node:http' : ''}) in a separate process\n`);
  const rows = [];
  for (const name of Object.keys(r.raw)) {
    rows.push([name, 'raw session.run, default options', 'seq', r.raw[name].default]);
    rows.push([name, 'raw session.run, intraOpNumThreads 1', 'seq', r.raw[name].threads1]);
    if (r.raw[name].pool1) rows.push([name, 'in-process pool (default), no HTTP', 'c1', r.raw[name].pool1]);
    if (r.raw[name].pool16) rows.push([name, 'in-process pool (default), no HTTP', 'c16', r.raw[name].pool16]);
    if (r.raw[name].pool16x2x1) rows.push([name, 'in-process pool 2x1, no HTTP', 'c16', r.raw[name].pool16x2x1]);
    if (r.raw[name].pool16x1x2) rows.push([name, 'in-process pool 1x2, no HTTP', 'c16', r.raw[name].pool16x1x2]);
    for (const [key, v] of Object.entries(r.socket[name])) {
      const [mode, c, variant] = key.split('-');
      const note = !variant ? '' : variant.startsWith('pool') ? ` (pool ${variant.replace('pool', '')})` : ` (${variant === 'nobatch' ? 'no batching' : variant})`;
      rows.push([name, `socket ${mode}${note}`, c, v]);
    }
  }
  console.log(['model', 'path', 'conc', 'req/s', 'p50 ms', 'p99 ms'].map((h, i) => (i < 2 ? h.padEnd(i ? 40 : 6) : h.padStart(9))).join(''));
  for (const [m, p, c, v] of rows) {
    const narrowShare = v.sessions?.runs ? `   (${fmt((100 * v.sessions.narrow) / v.sessions.runs, 0)}% of runs on worker 0's 1-thread session)` : '';
    console.log(`${m.padEnd(6)}${p.padEnd(40)}${c.padStart(9)}${fmt(v.rps, 0).padStart(9)}${fmt(v.p50, 3).padStart(9)}${fmt(v.p99, 3).padStart(9)}${narrowShare}`);
  }
  const conv = r.socket.conv;
  const tiny = r.socket.tiny;
  const bestInProcess = Math.max(r.raw.conv.pool16.rps, r.raw.conv.pool16x2x1.rps, r.raw.conv.pool16x1x2.rps);
  const targets = {
    [`conv c1 p50 / raw default p50 (target <= 1.05; ${fmt(conv['binary-c1'].p50, 3)} / ${fmt(r.raw.conv.default.p50, 3)} ms)`]: conv['binary-c1'].p50 / r.raw.conv.default.p50,
    [`conv c16 socket req/s / best in-process pool req/s (target >= 0.95; ${fmt(conv['binary-c16'].rps, 0)} / ${fmt(bestInProcess, 0)})`]: conv['binary-c16'].rps / bestInProcess,
    'tiny: added ms at p50, binary c1 vs raw default (target <= 0.25)': tiny['binary-c1'].p50 - r.raw.tiny.default.p50,
    'tiny: socket binary c16 req/s (target >= 10,000)': tiny['binary-c16'].rps,
  };
  r.targets = targets;
  const ratios = {
    'conv: socket binary p50 (c1) / raw 1-thread p50': conv['binary-c1'].p50 / r.raw.conv.threads1.p50,
    'conv: socket binary p50 (c1) / raw default p50': conv['binary-c1'].p50 / r.raw.conv.default.p50,
    'conv: socket binary p50 (c1, pool 1x2) / raw default p50': conv['binary-c1-pool1x2'].p50 / r.raw.conv.default.p50,
    'conv: socket binary c16 req/s / raw default sequential req/s': conv['binary-c16'].rps / r.raw.conv.default.rps,
    'conv: socket json c16 req/s / raw default sequential req/s': conv['json-c16'].rps / r.raw.conv.default.rps,
    'conv: json p50 / binary p50 (c1, image input)': conv['json-c1'].p50 / conv['binary-c1'].p50,
    'tiny: added ms at p50, binary c1 (vs raw default)': tiny['binary-c1'].p50 - r.raw.tiny.default.p50,
    'tiny: added ms at p50, json c1 (vs raw default)': tiny['json-c1'].p50 - r.raw.tiny.default.p50,
    'tiny: socket binary c16 req/s': tiny['binary-c16'].rps,
    'tiny: socket json c16 req/s': tiny['json-c16'].rps,
    'tiny: socket binary c16 req/s / raw default sequential req/s': tiny['binary-c16'].rps / r.raw.tiny.default.rps,
    'conv: socket binary c16 req/s (pool 1x2) / raw default sequential req/s': conv['binary-c16-pool1x2'].rps / r.raw.conv.default.rps,
    'conv: socket binary c1 p50 (pool 2x1) / raw default p50': conv['binary-c1-pool2x1'].p50 / r.raw.conv.default.p50,
    'conv: socket binary c16 req/s (pool 2x1) / best in-process pool': conv['binary-c16-pool2x1'].rps / bestInProcess,
    'conv: socket binary c16 req/s (pool 1x2) / best in-process pool': conv['binary-c16-pool1x2'].rps / bestInProcess,
    'conv: in-process pool c1 p50 (default) / raw default p50': r.raw.conv.pool1.p50 / r.raw.conv.default.p50,
    'conv: in-process pool c16 req/s (default pool, no HTTP) / raw default seq': r.raw.conv.pool16.rps / r.raw.conv.default.rps,
    'tiny: socket binary c16 req/s, batching / no batching': tiny['binary-c16'].rps / tiny['binary-c16-nobatch'].rps,
    'tiny: requests per batched run at c16 (default pool)': r.poolStats.tiny.batchedJobs / Math.max(1, r.poolStats.tiny.batches),
  };
  r.ratios = ratios;
  console.log(`\ntargets (default pool, this run${r.busy ? ', with a busy-loop process on one core' : ''}):`);
  for (const [k, v] of Object.entries(targets)) console.log(`  ${k.padEnd(100)}${fmt(v, 3).padStart(10)}`);
  console.log('\nother ratios:');
  for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(64)}${fmt(v, 3).padStart(10)}`);
  console.log(`\nelapsed ${fmt(r.elapsedSeconds, 1)} s`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
