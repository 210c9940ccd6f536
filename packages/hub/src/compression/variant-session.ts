import { DATATYPES, datatypeFromOrt, type TypedArray, type TypedTensor } from '@edgefleet/shared';
import * as ort from 'onnxruntime-node';
import type { CalibrationFeeds, RunModel } from './collect-activations.js';

/**
 * The variant build's one door to onnxruntime. One intra-op thread per session: the build shares
 * the hub's machine with MQTT ingest and the API, so it keeps one core for serving, and fp32 and the
 * variant are timed under the same setting so their latency ratio stays fair.
 */
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 };

export interface ModelSession {
  readonly outputNames: readonly string[];
  /** Runs the inputs and returns every output (or the named ones), in that order. */
  run(inputs: readonly TypedTensor[], outputs?: readonly string[]): Promise<TypedTensor[]>;
  release(): Promise<void>;
}

function toOrt(t: TypedTensor): ort.Tensor {
  return new ort.Tensor(DATATYPES[t.datatype].ort as ort.Tensor.Type, t.data as never, t.shape);
}

function fromOrt(name: string, tensor: ort.Tensor): TypedTensor {
  const datatype = datatypeFromOrt(tensor.type);
  if (!datatype) throw new Error(`output ${name} has unsupported type ${tensor.type}`);
  return { name, datatype, shape: tensor.dims.map(Number), data: tensor.data as TypedArray };
}

/** Loads a model; throws "onnxruntime could not load the <what>: …". */
export async function openSession(bytes: Uint8Array, what: string): Promise<ModelSession> {
  const session = await ort.InferenceSession.create(bytes, SESSION_OPTIONS).catch((err: Error) => {
    throw new Error(`onnxruntime could not load the ${what}: ${err.message}`);
  });
  return {
    outputNames: session.outputNames,
    async run(inputs, outputs = session.outputNames) {
      const feeds = Object.fromEntries(inputs.map((t) => [t.name, toOrt(t)]));
      const results = await session.run(feeds, [...outputs]).catch((err: Error) => {
        throw new Error(`onnxruntime could not run the ${what}: ${err.message}`);
      });
      return outputs.map((name) => {
        const tensor = results[name];
        if (!tensor) throw new Error(`the ${what} did not produce output ${name}`);
        return fromOrt(name, tensor);
      });
    },
    release: () => session.release(),
  };
}

/**
 * collect-activations' RunModel on onnxruntime: it passes the same augmented model for every
 * sample, so the session is created once per model and kept until `release`.
 */
export function calibrationRunner(): { run: RunModel; release(): Promise<void> } {
  let current: { bytes: Uint8Array; session: Promise<ModelSession> } | null = null;
  const release = async () => {
    const open = current;
    current = null;
    // A session that never opened has nothing to release; its error already went to the caller.
    if (open) await open.session.then((s) => s.release(), () => undefined);
  };
  const run: RunModel = async (bytes, feeds: CalibrationFeeds, outputs) => {
    if (current?.bytes !== bytes) {
      await release();
      current = { bytes, session: openSession(bytes, 'model augmented for calibration') };
    }
    const session = await current.session;
    const inputs = Object.entries(feeds).map(([name, f]) => ({ name, datatype: 'FP32' as const, shape: [...f.dims], data: f.data }));
    const results = await session.run(inputs, outputs);
    return Object.fromEntries(
      results.map((t) => {
        if (t.datatype !== 'FP32') throw new Error(`calibration tensor ${t.name} is ${t.datatype}; only FP32 activations are calibrated`);
        return [t.name, t.data as Float32Array];
      }),
    );
  };
  return { run, release };
}
