// Compression bench: every built profile of five models, made by the hub's own build code
// (runVariantBuild: a worker thread that transforms, evaluates against fp32 in onnxruntime with one
// intra-op thread, and zstd-compresses), then each variant timed again in this process against fp32
// with default session options (what a device gets), runs alternating. Prints a table per model and a
// targets block (issue 16's acceptance numbers), and writes bench/results/compression-<date>.json.
// Env: BENCH_COMPRESSION_RUNS (timed runs per fp32/variant pair, default 200), BENCH_COMPRESSION_WARMUP (default 20).
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { BUILT_PROFILES, goldenInputTensors } from '../packages/shared/dist/index.js';
import { buildConvNet, buildMlp, constantNodeTensor, decodeModel, readSignature, tensorValues } from '../packages/shared/dist/onnx/index.js';
import { DEFAULT_TIMING, runVariantBuild } from '../packages/hub/dist/compression/variant-builder.js';
import { percentile } from '../packages/hub/dist/compression/evaluation.js';
import { DEFAULT_PRUNE_SPARSITY } from '../packages/hub/dist/models/variant-service.js';
import { fixtureModelUrl, fixtureSamples } from '../test/fixtures/onnx/fixture-data.mjs';
import { machineAtStart, positiveInt, runIfMain } from './bench-process.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const RUNS = positiveInt('BENCH_COMPRESSION_RUNS', 200);
const WARMUP = positiveInt('BENCH_COMPRESSION_WARMUP', 20);
/** The hub splits a set: the first min(N/2, 256) samples calibrate, the rest are held out for evaluation. */
const FIXTURE_SAMPLES = 256 + 1000;
const INT8_PROFILES = ['int8-dynamic', 'int8-static', 'int8-weights', 'pruned'];
/** Issue 16 judges sizes and shares on models with at least this many bytes of weights. */
const MIN_WEIGHT_BYTES = 256 * 1024;

/** mulberry32 and Box–Muller: seeded uniform [0, 1) and N(0, 1) values for the builder models, which have no data of their own. */
function seeded(seed) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

/** `count` noise samples of the model's (single, dynamic-batch) input: N(0, 1) at a per-sample scale in [0.4, 1.2), like the fixtures' data. */
function noiseSamples(spec, count, seed) {
  const sampleDims = spec.shape.slice(1);
  const perSample = sampleDims.reduce((a, b) => a * b, 1);
  const { uniform, normal } = seeded(seed);
  const data = new Float32Array(count * perSample);
  for (let s = 0; s < count; s++) {
    const scale = 0.4 + 0.8 * uniform();
    for (let i = s * perSample; i < (s + 1) * perSample; i++) data[i] = normal() * scale;
  }
  return { input: data, dims: [count, ...sampleDims], labels: null };
}

const MODELS = [
  ...['torch-cnn', 'torch-mlp', 'torch-encoder'].map((name) => ({
    name,
    source: 'PyTorch fixture, labelled fixture data',
    bytes: new Uint8Array(readFileSync(fixtureModelUrl(name))),
    data: () => fixtureSamples(name, FIXTURE_SAMPLES, 16),
  })),
  {
    name: 'conv-net',
    source: 'builder conv net 3x128x128 [32,64,128,256], seeded noise',
    bytes: buildConvNet({ channels: 3, size: 128, filters: [32, 64, 128, 256], classes: 10 }),
    // Calibration keeps every sample's activations (~3.7 MB each here): 64 calibrate, 64 held out.
    samples: 128,
  },
  {
    name: 'builder-mlp',
    source: 'builder MLP 256→1024→1024→10, seeded noise',
    bytes: buildMlp({ inputSize: 256, hidden: [1024, 1024], outputSize: 10 }),
    samples: FIXTURE_SAMPLES,
  },
];

/** Bytes of the model's constant tensors (initializers and Constant nodes). */
function weightBytes(model) {
  const graph = model.graph;
  const tensors = [...graph.initializer, ...graph.node.map(constantNodeTensor).filter(Boolean)];
  return tensors.reduce((n, t) => {
    try {
      return n + tensorValues(t).byteLength;
    } catch {
      return n; // a type graph access does not read (strings…): not a weight
    }
  }, 0);
}

/** The model's calibration set (the hub's CalibrationSet) and the held-out sample the build times on. */
function calibrationOf(spec, data) {
  const samples = data.dims[0];
  const perSample = data.input.length / samples;
  const first = Math.min(Math.floor(samples / 2), 256);
  const timingInput = { name: spec.name, datatype: 'FP32', shape: [1, ...data.dims.slice(1)], data: data.input.slice(first * perSample, (first + 1) * perSample) };
  const set = { samples, inputs: [{ name: spec.name, datatype: 'FP32', shape: data.dims, data: data.input }], ...(data.labels ? { labels: data.labels } : {}) };
  return { set, timingInput };
}

/** Runs the hub's variant build for every profile; resolves with the variants in build order. */
async function build(model, goldenInputs, calibration) {
  const variants = [];
  const job = {
    model: model.slice(), // the build transfers (detaches) its buffers
    goldenInputs,
    calibration,
    profiles: [...BUILT_PROFILES],
    budget: {},
    pruneSparsity: DEFAULT_PRUNE_SPARSITY,
    calibrationMethod: 'auto',
  };
  const { done } = runVariantBuild(job, { onProgress() {}, onVariant: (v) => variants.push(v) });
  await done;
  return variants;
}

const openDefault = (bytes) => ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });

/** p50 of fp32 and the variant with default session options, runs alternating (and swapping order) so load drift hits both. */
async function defaultOptionsLatency(fp32, variantBytes, input) {
  const variant = await openDefault(variantBytes);
  try {
    const feeds = () => ({ [input.name]: new ort.Tensor('float32', input.data, input.shape) });
    for (let i = 0; i < WARMUP; i++) {
      await fp32.run(feeds());
      await variant.run(feeds());
    }
    const times = { fp32: [], variant: [] };
    for (let i = 0; i < RUNS; i++) {
      const order = i % 2 === 0 ? ['fp32', 'variant'] : ['variant', 'fp32'];
      for (const which of order) {
        const session = which === 'fp32' ? fp32 : variant;
        const start = performance.now();
        await session.run(feeds());
        times[which].push(performance.now() - start);
      }
    }
    const fp32P50Ms = percentile(times.fp32, 50);
    const p50Ms = percentile(times.variant, 50);
    return { runs: RUNS, fp32P50Ms, p50Ms, ratio: p50Ms / fp32P50Ms };
  } finally {
    await variant.release();
  }
}

async function benchModel(m) {
  const decoded = decodeModel(m.bytes);
  const { inputs } = readSignature(decoded);
  if (inputs.length !== 1) throw new Error(`${m.name}: the bench feeds one input, the model has ${inputs.length}`);
  const data = m.data ? m.data() : noiseSamples(inputs[0], m.samples, 7);
  const { set, timingInput } = calibrationOf(inputs[0], data);
  const started = performance.now();
  const built = await build(m.bytes, goldenInputTensors(inputs), set);
  const buildSeconds = (performance.now() - started) / 1000;
  // Nothing else runs now: the worker is gone, so the in-process timing has the machine to itself.
  const fp32 = await openDefault(m.bytes);
  const variants = [];
  try {
    for (const v of built) {
      const defaultOptions = v.bytes ? await defaultOptionsLatency(fp32, v.bytes, timingInput) : null;
      variants.push({ profile: v.profile, state: v.state, reason: v.reason, size: v.bytes?.byteLength ?? null, evaluation: v.evaluation ?? null, defaultOptions });
    }
  } finally {
    await fp32.release();
  }
  // Default options use every core: another process running meanwhile skews "def" most, so each model says what the load was.
  const loadavgAfter = +loadavg()[0].toFixed(2);
  return { name: m.name, source: m.source, fp32Bytes: m.bytes.byteLength, weightBytes: weightBytes(decoded), samples: set.samples, labels: Boolean(set.labels), buildSeconds, loadavgAfter, variants };
}

function machine() {
  let vnni = null;
  try {
    vnni = /\bavx512_vnni\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // not Linux: unknown
  }
  const { cores, loadavgAtStart, node } = machineAtStart();
  return { cores, cpu: cpus()[0]?.model ?? 'unknown', avx512Vnni: vnni, loadavgAtStart, node, onnxruntime: ort.env.versions?.node ?? 'unknown' };
}

const fx = (v, d = 2) => (v === null || v === undefined ? '-' : Number.isFinite(v) ? v.toFixed(d) : String(v));

function printModel(r) {
  console.log(`\n${r.name} — ${r.source}; fp32 ${(r.fp32Bytes / 1024).toFixed(0)} KB (${(r.weightBytes / 1024).toFixed(0)} KB weights), ${r.samples} samples${r.labels ? ' with labels' : ''}, build ${r.buildSeconds.toFixed(1)} s, 1-min load after ${r.loadavgAfter}`);
  const head = ['profile', 'size', 'zstd', 'p50 1t', 'ratio 1t', 'p50 def', 'ratio def', 'agree', 'accuracy (fp32)', 'q-share', 'state'];
  const widths = [13, 6, 6, 8, 9, 8, 10, 7, 16, 8, 9];
  const line = (cells) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(' ');
  console.log(line(head));
  const evals = r.variants.map((v) => v.evaluation).filter(Boolean);
  const defaults = r.variants.map((v) => v.defaultOptions).filter(Boolean);
  const median = (xs) => (xs.length ? percentile(xs, 50) : null);
  const fp32Acc = evals.find((e) => e.fp32Accuracy !== null)?.fp32Accuracy ?? null;
  console.log(line(['fp32', '1.00', '-', fx(median(evals.map((e) => e.fp32LatencyMs)), 3), '1.00', fx(median(defaults.map((d) => d.fp32P50Ms)), 3), '1.00', '1.000', fp32Acc === null ? '-' : fx(fp32Acc, 3), '-', 'reference']));
  for (const v of r.variants) {
    const e = v.evaluation;
    const d = v.defaultOptions;
    const accuracy = e?.accuracy === null || !e ? '-' : `${fx(e.accuracy, 3)} (${fx(e.fp32Accuracy, 3)})`;
    console.log(line([v.profile, fx(e?.sizeRatio), fx(e?.transferRatio), fx(e?.latencyMs, 3), fx(e?.latencyRatio), fx(d?.p50Ms, 3), fx(d?.ratio), fx(e?.agreement, 3), accuracy, fx(e?.quantizedWeightShare, 3), v.state]));
  }
  for (const v of r.variants) {
    if (v.reason) console.log(`  ${v.profile} ${v.state}: ${v.reason}`);
    const notes = v.evaluation?.notes ?? [];
    const shown = notes.slice(0, 2).map((n) => (n.length > 150 ? `${n.slice(0, 147)}...` : n));
    if (shown.length) console.log(`  ${v.profile} notes: ${shown.join(' | ')}${notes.length > 2 ? ` | +${notes.length - 2} more in the JSON` : ''}`);
  }
}

/** One target, `value <= limit` or `value >= limit` for every case: PASS when all meet it (a failed variant has no value and misses). */
function target(label, cases, op, limit, digits = 3) {
  const ok = (v) => v !== null && (op === '<=' ? v <= limit : v >= limit);
  const show = (c) => `${c.what} ${c.value === null ? 'no value (failed)' : c.value.toFixed(digits)}`;
  const misses = cases.filter((c) => !ok(c.value));
  const worst = cases.reduce((w, c) => (w === null || (op === '<=' ? c.value > w.value : c.value < w.value) ? c : w), null);
  // Few cases: every one; many: how many meet it, and every miss or else the closest to the limit.
  const text =
    cases.length <= 3
      ? cases.map(show).join(', ')
      : `${cases.length - misses.length} of ${cases.length} meet it; ${misses.length > 0 ? `misses: ${misses.map(show).join(', ')}` : `worst ${show(worst)}`}`;
  return { label, pass: cases.length > 0 && misses.length === 0, cases, text };
}

function targets(models) {
  const big = models.filter((m) => m.weightBytes >= MIN_WEIGHT_BYTES);
  const pick = (ms, profiles, field) =>
    ms.flatMap((m) => m.variants.filter((v) => profiles.includes(v.profile)).map((v) => ({ what: `${m.name}/${v.profile}`, value: field(v) ?? null })));
  const conv = models.filter((m) => m.name === 'conv-net');
  return [
    target('int8 size <= 0.27x fp32 (int8-dynamic/-static/-weights, pruned; models with >= 256 KB weights)', pick(big, INT8_PROFILES, (v) => v.evaluation?.sizeRatio), '<=', 0.27),
    target('fp16 size <= 0.55x fp32 (models with >= 256 KB weights)', pick(big, ['fp16'], (v) => v.evaluation?.sizeRatio), '<=', 0.55),
    target('int8-static top-1 agreement >= 0.995 (held-out, CNN and MLP fixtures)', pick(models.filter((m) => ['torch-cnn', 'torch-mlp'].includes(m.name)), ['int8-static'], (v) => v.evaluation?.agreement), '>=', 0.995, 4),
    target('quantized weight share >= 0.90 (every int8 profile, models with >= 256 KB weights)', pick(big, INT8_PROFILES, (v) => v.evaluation?.quantizedWeightShare), '>=', 0.9),
    target('int8-static conv-net latency <= 0.6x fp32, build (1 intra-op thread)', pick(conv, ['int8-static'], (v) => v.evaluation?.latencyRatio), '<=', 0.6),
    target('int8-static conv-net latency <= 0.6x fp32, default session options', pick(conv, ['int8-static'], (v) => v.defaultOptions?.ratio), '<=', 0.6),
  ];
}

async function main() {
  const results = { machine: machine(), runsPerPair: RUNS, warmup: WARMUP, models: [] };
  const m = results.machine;
  console.log(`compression bench — ${m.cores} cores, ${m.cpu}${m.avx512Vnni === null ? '' : m.avx512Vnni ? ' (AVX512-VNNI)' : ' (no AVX512-VNNI)'}, node ${m.node}, onnxruntime-node ${m.onnxruntime}, load avg at start ${m.loadavgAtStart.join(' ')}`);
  console.log(`size/zstd: file and transfer copy / fp32 file; "1t": the hub build's evaluation (1 intra-op thread, ${DEFAULT_TIMING.runs} alternating runs);`);
  console.log(`"def": this process, default session options, ${RUNS} alternating runs per fp32/variant pair; ratios are variant / fp32 in the same run; batch 1.`);
  console.log(`agree: top-1 agreement with fp32 on held-out samples; q-share: share of Conv/MatMul/Gemm weight bytes stored int8. Budget: the default (agreement >= 0.99).`);
  const started = performance.now();
  for (const model of MODELS) {
    const r = await benchModel(model);
    results.models.push(r);
    printModel(r);
  }
  results.targets = targets(results.models);
  results.elapsedSeconds = (performance.now() - started) / 1000;
  results.loadavgAtEnd = loadavg().map((l) => +l.toFixed(2));
  console.log('\ntargets (issue 16)');
  for (const t of results.targets) console.log(`  ${t.pass ? 'PASS' : 'MISS'}  ${t.label}\n        ${t.text}`);
  console.log(`\nelapsed ${results.elapsedSeconds.toFixed(1)} s, load avg at end ${results.loadavgAtEnd.join(' ')}`);
  await mkdir(join(here, 'results'), { recursive: true });
  const file = join(here, 'results', `compression-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify(results, null, 2));
  console.log(`results written to ${file}`);
}

runIfMain(import.meta.url, main);
