import { joinBinaryBody, seededRandom, type BaselineInfo, type DriftAlert, type DriftModelView, type EvaluationRun } from '@edgefleet/shared';
import { api, type AgentHandle, type Hub } from './fleet.js';
import { binaryInfer } from './inference-load.js';
import { unixRequest } from './unix-http.js';

/**
 * Seeded data for the drift end-to-end tests, and the few hub calls they make. Tabular rows have 30
 * features of mixed kinds (as packages/hub/test/drift-math.test.ts): normals at different scales,
 * log-normals (skewed), uniforms, integer counts and small categorical codes with uneven shares.
 * Images are NCHW with a per-image brightness and tint plus pixel noise, so channel means vary
 * between images the way they do between photos.
 */

export const TABULAR_FEATURES = 30;
/** Standard deviation of each tabular feature, so a test can shift it by a number of them. */
const SD = Array.from({ length: TABULAR_FEATURES }, (_, f) => [1 + f / 5, 0.5, 2.9, 2, 0.9][f % 5]!);

const normal = (random: () => number) => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());

function drawFeature(f: number, random: () => number, shiftSd: number): number {
  const shift = shiftSd * SD[f]!;
  switch (f % 5) {
    case 0:
      return f + SD[f]! * normal(random) + shift;
    case 1:
      return Math.exp(0.5 * normal(random)) + shift;
    case 2:
      return 10 * random() + shift;
    case 3:
      return Math.max(0, Math.round(4 + 2 * normal(random) + shift));
    default: {
      const u = random();
      return u < 0.5 ? 0 : u < 0.8 ? 1 : u < 0.95 ? 2 : 3;
    }
  }
}

/** `rows` × 30 features, row-major; the features in `shifted` moved by `shiftSd` standard deviations. */
export function tabularRows(rows: number, seed: number, shifted: ReadonlySet<number> = new Set(), shiftSd = 1): Float32Array {
  const random = seededRandom(seed);
  const out = new Float32Array(rows * TABULAR_FEATURES);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < TABULAR_FEATURES; f++) out[r * TABULAR_FEATURES + f] = drawFeature(f, random, shifted.has(f) ? shiftSd : 0);
  }
  return out;
}

/** `count` images [count, 3, size, size] with values around 0.2–0.8; `brighten` is added to every pixel. */
export function images(count: number, size: number, seed: number, brighten = 0): Float32Array {
  const random = seededRandom(seed);
  const plane = size * size;
  const out = new Float32Array(count * 3 * plane);
  for (let i = 0; i < count; i++) {
    const brightness = 0.3 + 0.3 * random();
    for (let c = 0; c < 3; c++) {
      const tint = 0.1 * (random() - 0.5);
      const base = (i * 3 + c) * plane;
      for (let p = 0; p < plane; p++) out[base + p] = brightness + tint + 0.15 * (random() - 0.5) + brighten;
    }
  }
  return out;
}

/** PUT …/reference with one FP32 input in the binary tensor form; answers the baseline built. */
export async function putReference(hub: Hub, model: string, version: string, input: { name: string; shape: number[]; data: Float32Array }): Promise<BaselineInfo> {
  const bytes = new Uint8Array(input.data.buffer, input.data.byteOffset, input.data.byteLength);
  const { body, headerLength } = joinBinaryBody({ inputs: [{ name: input.name, datatype: 'FP32', shape: input.shape, parameters: { binary_data_size: bytes.byteLength } }] }, [bytes]);
  const path = `/api/v1/models/${model}/versions/${version}/reference`;
  const res = await fetch(`${hub.apiUrl}${path}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) },
    body,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`PUT ${path} answered ${res.status}: ${text}`);
  return JSON.parse(text) as BaselineInfo;
}

/**
 * Serves `requests` batched requests one after another on the agent's socket (binary tensors), the
 * k-th with `rows(k)` as its input. One at a time: the agent closes a window after a number of
 * requests, so sequential requests make every window hold exactly that many requests' rows.
 */
export async function serveRequests(
  agent: AgentHandle,
  model: string,
  input: { name: string; sampleShape: number[] },
  output: string,
  requests: number,
  rows: (k: number) => Float32Array,
): Promise<void> {
  const per = input.sampleShape.reduce((a, b) => a * b, 1);
  for (let k = 0; k < requests; k++) {
    const data = rows(k);
    const call = binaryInfer(model, { name: input.name, shape: [data.length / per, ...input.sampleShape], data }, output);
    const res = await unixRequest(agent.socketPath, 'POST', call.path, call.body, call.headers);
    if (res.status !== 200) throw new Error(`request ${k} to ${model} on ${agent.deviceId} answered ${res.status}: ${res.body.toString()}`);
  }
}

export function evaluateNow(hub: Hub): Promise<EvaluationRun> {
  return api<EvaluationRun>(hub, 'POST', '/api/v1/drift/evaluations', {});
}

export function driftView(hub: Hub, model: string, version: string): Promise<DriftModelView> {
  return api<DriftModelView>(hub, 'GET', `/api/v1/drift/${model}/${version}?limit=2000`);
}

export async function alertsOf(hub: Hub, model: string, state: 'active' | 'cleared' | 'all' = 'all'): Promise<DriftAlert[]> {
  return (await api<DriftAlert[]>(hub, 'GET', `/api/v1/alerts?state=${state}`)).filter((a) => a.model === model);
}
