// Drift tracking cost on the socket inference path: requests/s and p50/p99 through the agent's local
// API (createLocalApi + createModelRuntime from packages/agent/dist, a real Unix socket, the load
// generator in its own process) with drift tracking on and off, in the same run, in alternating rounds
// so that a noisy neighbour hits both sides alike. Both runtimes load the same files with the same
// baseline (ModelFile.drift); only the runtime's `drift` option differs. While "on" is measured, the
// windows are taken every second as the agent's reporter would. Also prints the wire size of one
// 500-sample window for 30 and 50 tabular features. Writes bench/results/drift.json.
// Env: BENCH_SECONDS (per measurement, default 2), BENCH_WARMUP_MS (default 300), BENCH_ROUNDS (default 3).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import {
  addSample,
  baselineFromReference,
  datatypeFromOrt,
  emptySummary,
  seededRandom,
  summaryBytes,
  summarySamples,
} from '../packages/shared/dist/index.js';
import { buildConvNet, buildMlp, decodeModel, readSignature } from '../packages/shared/dist/onnx/index.js';
import { createModelRuntime } from '../packages/agent/dist/inference/model-runtime.js';
import { createModelTable } from '../packages/agent/dist/inference/model-table.js';
import { createLocalApi } from '../packages/agent/dist/local-api/local-api.js';
import { computeBaseline } from '../packages/hub/dist/drift/baseline-compute.js';
import { loadGenerator, percentile, requestBody } from './socket-load.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const { pino } = createRequire(join(here, '../packages/agent/package.json'))('pino');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const logger = pino({ level: 'warn' });

/** The models of bench/run.mjs; `reference` samples build each one's baseline. */
const MODELS = {
  tiny: { bytes: buildMlp({ inputSize: 16, hidden: [32], outputSize: 4 }), input: 'input', shape: [1, 16], reference: 2000 },
  conv: { bytes: buildConvNet({ channels: 3, size: 128, filters: [32, 64, 128, 256], classes: 10 }), input: 'image', shape: [1, 3, 128, 128], reference: 64 },
};
const CASES = [1, 16];

const median = (values) => percentile([...values].sort((a, b) => a - b), 0.5);

/** The baseline as the hub builds it (its own baseline-compute): the fp32 model run on seeded reference data. */
async function buildBaseline(path, model, signature) {
  const rand = seededRandom(17);
  const data = new Float32Array(model.reference * model.shape.slice(1).reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = (rand() - 0.5) * 1.2;
  const session = await ort.InferenceSession.create(path);
  const run = async (inputs) => {
    const out = await session.run(Object.fromEntries(inputs.map((t) => [t.name, new ort.Tensor('float32', t.data, t.shape)])));
    return Object.entries(out).map(([name, t]) => ({ name, datatype: datatypeFromOrt(t.type), shape: [...t.dims], data: t.data }));
  };
  const reference = { samples: model.reference, inputs: [{ name: model.input, datatype: 'FP32', shape: [model.reference, ...model.shape.slice(1)], data }] };
  const { baseline } = await computeBaseline(signature, reference, run);
  await session.release();
  return baseline;
}

/** Bytes of one 500-sample window's summary on the wire for `features` standard-normal-ish columns and a 4-class output. */
function windowBytes(features) {
  const rand = seededRandom(features);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const rows = 2000;
  const cols = Array.from({ length: features }, () => Float64Array.from({ length: rows }, normal));
  const classes = Float64Array.from({ length: rows }, () => Math.floor(rand() * 4));
  const baseline = baselineFromReference({
    features: cols.map((values, i) => ({ name: `input[${i}]`, values })),
    outputs: [{ name: 'probs.class', values: classes, categories: [0, 1, 2, 3] }],
  });
  const summary = emptySummary(baseline, Date.now());
  const row = new Float64Array(features);
  for (let r = 0; r < 500; r++) {
    for (let i = 0; i < features; i++) row[i] = normal();
    addSample(baseline, summary, row, [Math.floor(rand() * 4)]);
  }
  summary.window.end = Date.now();
  return { features, samples: summarySamples(baseline, summary), bytes: summaryBytes(summary) };
}

/** One local API over its own runtime (drift on or off) serving every file. */
async function serve(dir, files, drift) {
  const runtime = createModelRuntime({ drift, logger });
  const table = createModelTable();
  const loaded = new Map();
  for (const f of files) {
    const model = await runtime.load(f);
    loaded.set(f.name, model);
    table.activate(model);
  }
  const socketPath = join(dir, `agent-drift-${drift ? 'on' : 'off'}.sock`);
  const api = createLocalApi({ socketPath, models: table, logger });
  await api.start();
  return { socketPath, loaded, stop: async () => (await api.stop(), await runtime.stop()) };
}

/** Takes `model`'s windows every second while `until` is pending (what the reporter does); counts the samples seen. */
function takeWindows(model, baseline, until) {
  let samples = 0;
  let windows = 0;
  const take = async () => {
    const w = await model.takeDrift();
    if (w?.summary) {
      samples += summarySamples(baseline, w.summary);
      windows += 1;
    }
  };
  const timer = setInterval(() => void take(), 1000);
  return until.finally(async () => {
    clearInterval(timer);
    await take();
  }).then((result) => ({ result, samples, windows }));
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'ef-bench-drift-'));
  const gen = loadGenerator();
  const started = Date.now();
  const results = { machine: { cores: availableParallelism(), loadavg: loadavg(), node: process.version }, seconds: SECONDS, rounds: ROUNDS, baselines: {}, rows: {}, windowBytes: [] };
  try {
    const files = [];
    for (const [name, m] of Object.entries(MODELS)) {
      const path = join(dir, `${name}.onnx`);
      await writeFile(path, m.bytes);
      const signature = readSignature(decodeModel(m.bytes));
      const drift = await buildBaseline(path, m, signature);
      results.baselines[name] = { features: drift.features.length, outputs: drift.outputs.length, bytes: Buffer.byteLength(JSON.stringify(drift)) };
      files.push({ name, version: '1', sha256: '-', profile: 'fp32', path, ...signature, drift });
    }
    const on = await serve(dir, files, true);
    const off = await serve(dir, files, false);
    const servers = { on, off };
    try {
      for (const [name, model] of Object.entries(MODELS)) {
        const { body, headers } = requestBody(model, 'binary');
        const file = files.find((f) => f.name === name);
        for (const concurrency of CASES) {
          const key = `${name}-binary-c${concurrency}`;
          const rounds = { on: [], off: [] };
          let tracked = 0;
          for (let round = 0; round < ROUNDS; round++) {
            // Alternate which side goes first, so neither always runs right after the other's load.
            const order = round % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
            for (const side of order) {
              const job = gen.run({ socketPath: servers[side].socketPath, path: `/v2/models/${name}/infer`, body: body.toString('base64'), headers, concurrency, durationMs: SECONDS * 1000, warmupMs: WARMUP_MS });
              let r;
              if (side === 'on') {
                const taken = await takeWindows(servers.on.loaded.get(name), file.drift, job);
                r = taken.result;
                tracked += taken.samples;
              } else {
                r = await job;
              }
              if (r.errors > 0) throw new Error(`${key} drift ${side}: ${r.errors} failed requests (${r.lastError})`);
              rounds[side].push(r);
            }
          }
          if (tracked === 0) throw new Error(`${key}: the drift-on runtime took windows with no samples: drift was not tracked`);
          const offWindow = await servers.off.loaded.get(name).takeDrift();
          if (offWindow !== null) throw new Error(`${key}: the drift-off runtime tracks drift`);
          const agg = (rs) => ({ rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)), count: rs.reduce((n, r) => n + r.count, 0) });
          const row = { on: agg(rounds.on), off: agg(rounds.off), trackedSamples: tracked, rounds };
          row.ratio = { p50: row.on.p50 / row.off.p50, p99: row.on.p99 / row.off.p99, rps: row.on.rps / row.off.rps };
          results.rows[key] = row;
          console.error(`${key}: p50 ${row.on.p50.toFixed(3)} / ${row.off.p50.toFixed(3)} ms, req/s ${row.on.rps.toFixed(0)} / ${row.off.rps.toFixed(0)} (on / off)`);
        }
      }
    } finally {
      await on.stop();
      await off.stop();
    }
    results.windowBytes = [windowBytes(30), windowBytes(50)];
  } finally {
    gen.close();
    await rm(dir, { recursive: true, force: true });
  }
  results.elapsedSeconds = (Date.now() - started) / 1000;
  report(results);
  await mkdir(join(here, 'results'), { recursive: true });
  const out = join(here, 'results', 'drift.json');
  await writeFile(out, JSON.stringify(results, (k, v) => (k === 'rounds' && typeof v === 'object' ? undefined : v), 2));
  console.log(`\nresults written to ${out}`);
}

const fmt = (v, d = 2) => (typeof v === 'number' ? v.toFixed(d) : String(v));

function report(r) {
  console.log(`\ndrift tracking bench — ${r.machine.cores} cores, node ${r.machine.node}, load avg at start ${r.machine.loadavg.map((l) => l.toFixed(2)).join(' ')}, ${r.rounds} alternating rounds of ${r.seconds}s per side (medians)`);
  for (const [name, b] of Object.entries(r.baselines)) console.log(`baseline ${name}: ${b.features} features, ${b.outputs} outputs, ${b.bytes} bytes of JSON`);
  console.log(`\n${'row'.padEnd(20)}${['p50 on', 'p50 off', 'p99 on', 'p99 off', 'req/s on', 'req/s off', 'p50 x', 'p99 x', 'req/s x'].map((h) => h.padStart(10)).join('')}`);
  for (const [key, row] of Object.entries(r.rows)) {
    const cells = [row.on.p50, row.off.p50, row.on.p99, row.off.p99].map((v) => fmt(v, 3).padStart(10));
    cells.push(fmt(row.on.rps, 0).padStart(10), fmt(row.off.rps, 0).padStart(10));
    cells.push(...[row.ratio.p50, row.ratio.p99, row.ratio.rps].map((v) => fmt(v, 3).padStart(10)));
    console.log(`${key.padEnd(20)}${cells.join('')}`);
  }
  console.log('\nratios are on / off (p50, p99: > 1 is slower with drift on; req/s: < 1 is fewer)');
  for (const w of r.windowBytes) console.log(`window of ${w.samples} samples, ${w.features} features + 1 class output: ${w.bytes} bytes on the wire`);
  console.log(`\nelapsed ${fmt(r.elapsedSeconds, 1)} s`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
