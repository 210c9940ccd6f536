import { Agent, request } from 'node:http';
import { setTimeout as pause } from 'node:timers/promises';
import { joinBinaryBody } from '@edgefleet/shared';

/** One inference request as a local application sends it: a JSON body, or Triton's binary form. */
export interface InferCall {
  path: string;
  body: Buffer;
  headers: Record<string, string>;
}

export function jsonInfer(model: string, input: { name: string; shape: number[]; datatype: string; data: number[] }): InferCall {
  return {
    path: `/v2/models/${model}/infer`,
    body: Buffer.from(JSON.stringify({ inputs: [input] })),
    headers: { 'content-type': 'application/json' },
  };
}

export function binaryInfer(model: string, input: { name: string; shape: number[]; data: Float32Array }, output: string): InferCall {
  const { body, headerLength } = joinBinaryBody(
    {
      inputs: [{ name: input.name, shape: input.shape, datatype: 'FP32', parameters: { binary_data_size: input.data.byteLength } }],
      outputs: [{ name: output, parameters: { binary_data: true } }],
    },
    [new Uint8Array(input.data.buffer, input.data.byteOffset, input.data.byteLength)],
  );
  return {
    path: `/v2/models/${model}/infer`,
    body,
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) },
  };
}

export interface LoadFailure {
  socketPath: string;
  status: number | string;
  body: string;
  at: number;
}

export interface LoadStats {
  requests: number;
  ok: number;
  failures: LoadFailure[];
  /** Requests answered 200 per `model_version` the response named (JSON answers only carry it in the body; binary ones in the header JSON). */
  versions: Record<string, number>;
}

export interface InferenceLoad {
  readonly stats: LoadStats;
  /** Resolves once `n` more requests have been answered (whatever their status). */
  answered(n: number): Promise<void>;
  /** Stops every client after its request in flight and returns the totals. */
  stop(): Promise<LoadStats>;
}

export interface LoadTarget {
  socketPath: string;
  /** Chooses each request; `i` counts this client's requests. */
  call: (i: number) => InferCall;
  clients: number;
}

function send(agent: Agent, socketPath: string, call: InferCall): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, socketPath, method: 'POST', path: call.path, headers: { ...call.headers, 'content-length': String(call.body.byteLength) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(call.body);
  });
}

function versionOf(body: Buffer, headers: Record<string, unknown>): string | undefined {
  const headerLength = Number(headers['inference-header-content-length']);
  const text = Number.isFinite(headerLength) && headerLength > 0 ? body.subarray(0, headerLength).toString() : body.toString();
  try {
    return (JSON.parse(text) as { model_version?: string }).model_version;
  } catch {
    return undefined;
  }
}

/**
 * A steady closed-loop load of socket inference requests: `clients` concurrent keep-alive clients per
 * target, each sending its next request when the last one is answered (with `gapMs` between, to leave
 * the two cores to the processes under test). Every answer that is not a 200 — or a connection error —
 * is kept with its body, so a test can say which request failed and why.
 */
export function startInferenceLoad(targets: readonly LoadTarget[], gapMs = 2): InferenceLoad {
  const stats: LoadStats = { requests: 0, ok: 0, failures: [], versions: {} };
  let running = true;
  const waiters: Array<{ at: number; resolve: () => void }> = [];
  const agents: Agent[] = [];

  const settle = () => {
    for (const w of [...waiters]) {
      if (stats.requests >= w.at) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };

  async function client(target: LoadTarget, agent: Agent): Promise<void> {
    for (let i = 0; running; i++) {
      const call = target.call(i);
      try {
        const res = await send(agent, target.socketPath, call);
        if (res.status === 200) {
          stats.ok++;
          const version = versionOf(res.body, res.headers);
          if (version !== undefined) stats.versions[version] = (stats.versions[version] ?? 0) + 1;
        } else {
          stats.failures.push({ socketPath: target.socketPath, status: res.status, body: res.body.toString().slice(0, 300), at: Date.now() });
        }
      } catch (err) {
        stats.failures.push({ socketPath: target.socketPath, status: (err as NodeJS.ErrnoException).code ?? 'error', body: (err as Error).message, at: Date.now() });
      }
      stats.requests++;
      settle();
      if (gapMs > 0) await pause(gapMs);
    }
  }

  const loops = targets.flatMap((target) => {
    const agent = new Agent({ keepAlive: true, maxSockets: target.clients });
    agents.push(agent);
    return Array.from({ length: target.clients }, () => client(target, agent));
  });

  return {
    stats,
    answered(n) {
      const at = stats.requests + n;
      return new Promise((resolve) => {
        waiters.push({ at, resolve });
        settle();
      });
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const a of agents) a.destroy();
      for (const w of waiters.splice(0)) w.resolve();
      return stats;
    },
  };
}
