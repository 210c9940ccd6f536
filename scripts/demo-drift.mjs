// The demo's drift part: reference data for the demo classifier (so its rollout carries a baseline),
// then steady traffic on two devices and shifted traffic on the third, an evaluation pass, and the
// drift view printed: fleet score, devices over, alert messages.
import { request } from 'node:http';
import { seededRandom } from '../packages/shared/dist/index.js';

const FEATURES = 4;
/** Feature moved on the drifting device, and by how many standard deviations. */
const SHIFTED_FEATURE = 2;
const SHIFT_SD = 1.5;
/** Rows per request; the demo agents close a drift window every WINDOW_REQUESTS requests (500 samples, the hub's minimum). */
const ROWS = 50;
export const WINDOW_REQUESTS = 10;
const MEANS = [0.5, -0.2, 1.0, 0];
const SDS = [1, 0.5, 2, 0.8];

function rows(count, seed, shifted = false) {
  const random = seededRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const out = new Array(count * FEATURES);
  for (let r = 0; r < count; r++) {
    for (let f = 0; f < FEATURES; f++) {
      const shift = shifted && f === SHIFTED_FEATURE ? SHIFT_SD * SDS[f] : 0;
      out[r * FEATURES + f] = MEANS[f] + SDS[f] * normal() + shift;
    }
  }
  return out;
}

/** PUT …/reference: 2,000 rows of what the devices normally see; the hub builds the baseline and re-signs the manifests. */
export async function uploadReference(hubApi, model, version) {
  const samples = 2000;
  const body = { inputs: [{ name: 'input', datatype: 'FP32', shape: [samples, FEATURES], data: rows(samples, 1) }] };
  return hubApi('PUT', `/api/v1/models/${model}/versions/${version}/reference`, body);
}

function infer(socketPath, model, data) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [data.length / FEATURES, FEATURES], datatype: 'FP32', data }] });
    const req = request({ socketPath, method: 'POST', path: `/v2/models/${model}/infer`, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`infer on ${socketPath}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Two windows of traffic on every agent (the last one's shifted), then evaluation passes until every
 * device has an evaluation and the drifting one an alert (at most `timeoutMs`); prints the view.
 */
export async function showDrift({ hubApi, agents, model, version, say, timeoutMs = 15_000 }) {
  const drifting = agents[agents.length - 1];
  await Promise.all(
    agents.map(async (agent, i) => {
      for (let k = 0; k < 2 * WINDOW_REQUESTS; k++) await infer(agent.socketPath, model, rows(ROWS, 100 * (i + 1) + k, agent === drifting));
    }),
  );
  say(`served ${2 * WINDOW_REQUESTS * ROWS} samples on each device; ${drifting.deviceId} sees input[${SHIFTED_FEATURE}] shifted by ${SHIFT_SD} sd`);
  const deadline = Date.now() + timeoutMs;
  let view;
  for (;;) {
    await hubApi('POST', '/api/v1/drift/evaluations', {});
    view = await hubApi('GET', `/api/v1/drift/${model}/${version}`);
    const done = view.devices.length === agents.length && view.alerts.some((a) => a.state === 'active' && a.deviceId === drifting.deviceId);
    if (done) break;
    if (Date.now() > deadline) {
      say(`drift: not all evaluated within ${timeoutMs / 1000} s (${view.devices.length} of ${agents.length} devices, ${view.pendingSamples} samples pending)`);
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const fleet = view.fleet.at(-1);
  const over = view.devices.filter((d) => d.over);
  say(`drift of ${model} ${version}: fleet score ${fleet ? fleet.score.toFixed(2) : '-'} (over 1 is drift), ${view.fleet.length} fleet windows evaluated`);
  say(`  devices over: ${over.length === 0 ? 'none' : over.map((d) => `${d.deviceId} (${d.drifted.join(', ')})`).join('; ')}`);
  for (const alert of view.alerts.filter((a) => a.state === 'active')) say(`  alert: ${alert.message}`);
}
