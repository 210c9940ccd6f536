// What the socket benches (run.mjs, drift.mjs) share: the request input, its JSON or binary-tensor
// body, percentiles, and the load generator process they drive over IPC.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BINARY_HEADER, joinBinaryBody } from '../packages/shared/dist/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));

export function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The request input: deterministic values, the same in every run. */
export function sample(shape) {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.37) * 0.5;
  return x;
}

/** An inference request body for `model` ({input, shape}) in `mode` 'json' or 'binary' (outputs answered binary). */
export function requestBody(model, mode) {
  const x = sample(model.shape);
  if (mode === 'json') {
    return { body: Buffer.from(JSON.stringify({ inputs: [{ name: model.input, datatype: 'FP32', shape: model.shape, data: Array.from(x) }] })), headers: { 'content-type': 'application/json' } };
  }
  const { body, headerLength } = joinBinaryBody(
    { inputs: [{ name: model.input, datatype: 'FP32', shape: model.shape, parameters: { binary_data_size: x.byteLength } }], parameters: { binary_data_output: true } },
    [new Uint8Array(x.buffer)],
  );
  return { body, headers: { 'content-type': 'application/octet-stream', [BINARY_HEADER]: String(headerLength) } };
}

/** The load generator process (load-generator.mjs): `run(job)` answers its measurement. */
export function loadGenerator() {
  const child = fork(join(here, 'load-generator.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return {
    run(job) {
      return new Promise((resolve, reject) => {
        child.once('message', (m) => (m.ok ? resolve(m.result) : reject(new Error(m.error))));
        child.send(job);
      });
    },
    close: () => child.kill(),
  };
}
