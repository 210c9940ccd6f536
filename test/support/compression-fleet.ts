import {
  joinBinaryBody,
  type CalibrationSummary,
  type Device,
  type DeviceBenchmark,
  type DevicePlan,
  type InstalledModel,
  type VariantList,
} from '@edgefleet/shared';
import { fixtureSamples, type FixtureName } from '../fixtures/onnx/fixture-data.mjs';
import { api, eventually, type AgentHandle, type Hub } from './fleet.js';
import type { LogLine, RunningProcess } from './processes.js';
import { unixRequest } from './unix-http.js';

/**
 * What the compression end-to-end test asks of a real hub and real agents: calibration uploads in
 * the binary tensor form, waiting for a variant build, plans, benchmarks, reported models, one
 * inference on a socket, and the hub's access log of artifact downloads.
 */

const bytesOf = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** `count` labelled samples of a fixture as a calibration body in the binary tensor form (JSON would be ~10 MB for a few hundred images). */
export function binaryCalibration(name: FixtureName, count: number, seed: number): { body: Buffer; headerLength: number } {
  const s = fixtureSamples(name, count, seed);
  if (!s.labels) throw new Error(`fixture ${name} has no teacher, so no labels`);
  const tensors = [
    { name: 'input', datatype: 'FP32', shape: s.dims, bytes: bytesOf(s.input) },
    { name: 'labels', datatype: 'INT32', shape: [count], bytes: bytesOf(s.labels) },
  ];
  const header = { inputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: t.bytes.byteLength } })) };
  return joinBinaryBody(header, tensors.map((t) => t.bytes));
}

/** PUT …/calibration with a binary body (fleet.ts's api() sends no Inference-Header-Content-Length). */
export async function putCalibration(hub: Hub, model: string, version: string, data: { body: Buffer; headerLength: number }): Promise<CalibrationSummary> {
  const path = `/api/v1/models/${model}/versions/${version}/calibration`;
  const res = await fetch(`${hub.apiUrl}${path}`, {
    method: 'PUT',
    headers: {
      authorization: `Bearer ${hub.adminToken}`,
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(data.headerLength),
    },
    body: data.body,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`PUT ${path} answered ${res.status}: ${text}`);
  return JSON.parse(text) as CalibrationSummary;
}

/** Polls the variants of a version until its build has ended (done or failed) and answers the list. */
export function waitForBuild(hub: Hub, model: string, version: string, timeoutMs: number): Promise<VariantList> {
  return eventually(
    async () => {
      const list = await api<VariantList>(hub, 'GET', `/api/v1/models/${model}/versions/${version}/variants`);
      return (list.build?.state === 'done' || list.build?.state === 'failed') && list;
    },
    `the variant build of ${model}@${version} to end`,
    timeoutMs,
  );
}

/** One variant per line with its state, reason and the numbers that decided: what a failing assertion should show. */
export function describeVariants(list: VariantList): string {
  return list.variants
    .map((v) => {
      const e = v.evaluation;
      const numbers = e ? ` agreement=${e.agreement} accuracy=${e.accuracy}/${e.fp32Accuracy} size=${e.sizeRatio.toFixed(2)} transfer=${e.transferRatio.toFixed(2)} latency=${e.latencyRatio.toFixed(2)}` : '';
      return `${v.profile} ${v.state}${numbers}${v.reason ? ` reason=${v.reason}` : ''}`;
    })
    .join('\n');
}

/** The stored plan of a device for one version (undefined until there is one). */
export async function planOf(hub: Hub, deviceId: string, model: string, version: string): Promise<DevicePlan | undefined> {
  const q = new URLSearchParams({ deviceId, model, version });
  const { plans } = await api<{ plans: DevicePlan[] }>(hub, 'GET', `/api/v1/plans?${q}`);
  return plans[0];
}

export async function benchmarksOf(hub: Hub, deviceId: string): Promise<DeviceBenchmark[]> {
  return (await api<{ benchmarks: DeviceBenchmark[] }>(hub, 'GET', `/api/v1/devices/${deviceId}/benchmarks`)).benchmarks;
}

/** The model the device reports active under `model` (undefined: none). */
export async function reportedActiveModel(hub: Hub, deviceId: string, model: string): Promise<InstalledModel | undefined> {
  const device = await api<Device>(hub, 'GET', `/api/v1/devices/${deviceId}`);
  return device.models.find((m) => m.name === model && m.active);
}

/** One JSON inference of a fixture sample on the agent's socket; answers the first output's data (throws on a non-200). */
export async function inferFixture(agent: AgentHandle, model: string, fixture: FixtureName, seed: number): Promise<{ version: string; shape: number[]; data: number[] }> {
  const s = fixtureSamples(fixture, 1, seed);
  const body = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: s.dims, data: Array.from(s.input) }] });
  const res = await unixRequest(agent.socketPath, 'POST', `/v2/models/${model}/infer`, body, { 'content-type': 'application/json' });
  if (res.status !== 200) throw new Error(`inference on ${agent.deviceId} answered ${res.status}: ${res.body.toString()}`);
  const answer = res.json<{ model_version: string; outputs: Array<{ shape: number[]; data: number[] }> }>();
  return { version: answer.model_version, shape: answer.outputs[0]!.shape, data: answer.outputs[0]!.data };
}

/**
 * Artifact downloads the hub served, from Fastify's access log (the hub logs every request at
 * debug level, each "request completed" line carrying its request's url through reqId). Lines
 * before `fromLine` are left out, so a test can look at one step only.
 */
export function artifactDownloads(hub: RunningProcess, fromLine = 0): Array<{ sha256: string; status: number }> {
  const urls = new Map<unknown, string>();
  const served: Array<{ sha256: string; status: number }> = [];
  for (const line of hub.lines.slice(fromLine) as Array<LogLine & { reqId?: string; req?: { url?: string }; res?: { statusCode?: number } }>) {
    if (line.msg === 'incoming request' && line.req?.url) urls.set(line.reqId, line.req.url);
    if (line.msg === 'request completed') {
      const m = /^\/api\/v1\/artifacts\/([0-9a-f]{64})/.exec(urls.get(line.reqId) ?? '');
      if (m) served.push({ sha256: m[1]!, status: line.res?.statusCode ?? 0 });
    }
  }
  return served;
}
