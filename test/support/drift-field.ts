import mqtt, { type MqttClient } from 'mqtt';
import * as ort from 'onnxruntime-node';
import { addSample, createFeatureExtractor, emptySummary, type DriftBaseline, type DriftSummary, type EnrollResponse, type ModelVersion } from '@edgefleet/shared';
import type { Locator } from 'playwright-core';
import { api, type Hub } from './fleet.js';

/** Helpers of the drift end-to-end tests: field data, devices that publish drift summaries as an agent would, hub counters. */

/** Seeded standard normals (mulberry32 + Box–Muller): the same numbers on every run. */
export function normals(count: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

/** An attribute of every element a locator matches, in page order (read one by one: the hub's CSP refuses page-side eval). */
export async function attributes(locator: Locator, name: string): Promise<Array<string | null>> {
  const out: Array<string | null> = [];
  for (let i = 0, n = await locator.count(); i < n; i++) out.push(await locator.nth(i).getAttribute(name));
  return out;
}

/** A model version with its drift baseline and a session of the real model. */
export interface TrackedVersion {
  version: ModelVersion;
  baseline: DriftBaseline;
  session: ort.InferenceSession;
}

/** A device publishing drift records itself; `seq` is its record counter (the envelope's, never reused). */
export interface FieldDevice {
  deviceId: string;
  name: string;
  client: MqttClient;
  seq: number;
}

/**
 * One window's summary as an agent makes it: the real model runs on the inputs (onnxruntime), and
 * the shared extractor turns inputs and outputs into the baseline's feature rows.
 */
export async function windowSummary(t: TrackedVersion, input: Float32Array, width: number, window: { start: number; end: number }): Promise<DriftSummary> {
  const samples = input.length / width;
  const outputs = await t.session.run({ [t.session.inputNames[0]!]: new ort.Tensor('float32', input, [samples, width]) });
  const extractor = createFeatureExtractor(t.baseline.extraction!, { inputs: t.version.inputs, outputs: t.version.outputs });
  const inputTensors = [{ name: t.version.inputs[0]!.name, dims: [samples, width], data: input }];
  const outputTensors = Object.entries(outputs).map(([name, tensor]) => ({ name, dims: tensor.dims, data: tensor.data as Float32Array }));
  const features = new Float64Array(extractor.featureCount);
  const values = new Float64Array(extractor.outputCount);
  const summary = emptySummary(t.baseline, window.start);
  for (let row = 0; row < samples; row++) {
    extractor.inputRow(inputTensors, row, features);
    extractor.outputRow(outputTensors, row, values);
    addSample(t.baseline, summary, features, values);
  }
  summary.window.end = window.end;
  return summary;
}

/** A device enrolled through the API, connected to the broker with its own credentials (no agent runs). */
export async function enrollFieldDevice(hub: Hub, name: string): Promise<FieldDevice> {
  const { token } = await api<{ token: string }>(hub, 'POST', '/api/v1/enrollment-tokens', { ttlSeconds: 600 });
  const identity = await api<EnrollResponse>(hub, 'POST', '/api/v1/enroll', { token, name }, 201);
  const client = await mqtt.connectAsync(hub.brokerUrl, {
    username: identity.deviceId,
    password: identity.secret,
    clientId: `drift-${identity.deviceId}`,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  });
  return { deviceId: identity.deviceId, name, client, seq: 0 };
}

/** Records the hub committed and drift summaries it refused, from its Prometheus metrics. */
export async function ingestCounters(hub: Pick<Hub, 'apiUrl' | 'adminToken'>): Promise<{ stored: number; rejected: number; reasons?: string[] }> {
  const res = await fetch(`${hub.apiUrl}/metrics`, { headers: { authorization: `Bearer ${hub.adminToken}` } });
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  const text = await res.text();
  const total = (metric: string) => text.split('\n')
    .filter((line) => line.startsWith(`${metric} `) || line.startsWith(`${metric}{`))
    .reduce((n, line) => n + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  const rejected = total('edgefleet_drift_summaries_rejected_total');
  // The reasons, so a refusal names itself in the failure.
  const reasons = text.split('\n').filter((line) => line.startsWith('edgefleet_drift_summaries_rejected_total{') && !line.endsWith(' 0'));
  return { stored: total('edgefleet_ingest_stored_total'), rejected, ...(rejected > 0 ? { reasons } : {}) };
}
