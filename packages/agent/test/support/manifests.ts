import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  encodeGoldenFile,
  encodeTensor,
  goldenInputs,
  signManifest,
  typedArrayFor,
  type Manifest,
  type ModelAssignment,
  type Golden,
  type NumericTensor,
  type TypedTensor,
} from '@edgefleet/shared';
import { buildMlp, decodeModel, encodeModel, floatTensor, GraphBuilder, readSignature } from '@edgefleet/shared/onnx';
import type { ModelRuntime } from '../../src/inference/types.js';

export { imageModel } from '../../../../test/support/image-model.js';

export function mlp(seed: number): Uint8Array {
  return buildMlp({ inputSize: 4, hidden: [8], outputSize: 3, seed });
}

/**
 * idx INT64[n] → Gather over a [rows, 3] table → out FP32[n, 3]. The golden input (integers 0..9)
 * passes with 10 rows or more; an index of `rows` or beyond fails at run time, not at load: a model
 * that passes its golden check and errors on some real inputs.
 */
export function gatherModel(rows: number, seed = 1): Uint8Array {
  const g = new GraphBuilder('lookup');
  const idx = g.input('idx', 'INT64', [-1]);
  const values = new Float32Array(rows * 3).map((_, i) => ((i * 7919 + seed * 104729) % 1000) / 1000);
  const table = g.initializer(floatTensor('table', [rows, 3], values));
  g.node('Gather', [table, idx], { axis: 0 }, 'out');
  g.output('out', 'FP32', [-1, 3]);
  return encodeModel(g.build());
}

export function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The fp32 outputs of the model on its default golden inputs, computed with the given runtime. */
async function goldenOutputs(runtime: ModelRuntime, dir: string, bytes: Uint8Array, inputs: NumericTensor[]): Promise<NumericTensor[]> {
  const sha = sha256Of(bytes);
  const path = join(dir, `golden-${sha}.onnx`);
  await writeFile(path, bytes);
  const sig = readSignature(decodeModel(bytes));
  const model = await runtime.load({ name: 'golden', version: '0', sha256: sha, profile: 'fp32', path, inputs: sig.inputs, outputs: sig.outputs });
  try {
    const out = await model.infer(inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, data: typedArrayFor(t.datatype, t.values) })));
    return out.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, values: Array.from(t.data as ArrayLike<number>, Number) }));
  } finally {
    await model.close();
  }
}

export interface AssignmentOptions {
  name: string;
  version: string;
  bytes: Uint8Array;
  privateKeyPem: string;
  runtime: ModelRuntime;
  scratchDir: string;
  rolloutId?: string;
  /** Add this to every golden output value (a wrong golden vector). */
  goldenOffset?: number;
  /** Sign a manifest claiming this digest instead of the file's. */
  claimSha256?: string;
  /** Put the golden tensors in a golden file (added here by sha256, e.g. an artifact server's files) referenced by the manifest. */
  goldenFileInto?: Map<string, Uint8Array>;
  /** A compressed copy of the model for the agent to download instead (the caller serves it). */
  transfer?: Manifest['transfer'];
}

const typed = (t: NumericTensor): TypedTensor => ({ name: t.name, datatype: t.datatype, shape: t.shape, data: typedArrayFor(t.datatype, t.values) });

export async function assignmentFor(opts: AssignmentOptions): Promise<ModelAssignment> {
  const sig = readSignature(decodeModel(opts.bytes));
  const inputs = goldenInputs(sig.inputs);
  const outputs = (await goldenOutputs(opts.runtime, opts.scratchDir, opts.bytes, inputs)).map((t) => ({
    ...t,
    values: t.values.map((v) => v + (opts.goldenOffset ?? 0)),
  }));
  const tolerance = { atol: 1e-4 };
  let golden: Golden = { inputs: inputs.map(encodeTensor), outputs: outputs.map(encodeTensor), tolerance };
  if (opts.goldenFileInto) {
    const file = encodeGoldenFile({ inputs: inputs.map(typed), outputs: outputs.map(typed) });
    const sha256 = sha256Of(file);
    opts.goldenFileInto.set(sha256, file);
    golden = { inputs: [], outputs: [], tolerance, ref: { sha256, size: file.byteLength } };
  }
  const manifest: Manifest = {
    v: 1,
    model: opts.name,
    version: opts.version,
    profile: 'fp32',
    sha256: opts.claimSha256 ?? sha256Of(opts.bytes),
    size: opts.bytes.byteLength,
    inputs: sig.inputs,
    outputs: sig.outputs,
    golden,
    ...(opts.transfer ? { transfer: opts.transfer } : {}),
    createdAt: new Date(0).toISOString(),
  };
  return { ...(opts.rolloutId ? { rolloutId: opts.rolloutId } : {}), manifest: signManifest(manifest, opts.privateKeyPem) };
}

export { desired } from './plain-assignments.js';
