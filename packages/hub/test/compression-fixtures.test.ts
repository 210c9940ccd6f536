import { readFileSync } from 'node:fs';
import { BUILT_PROFILES, DATATYPES, goldenInputTensors, type TypedTensor } from '@edgefleet/shared';
import { decodeModel, readSignature } from '@edgefleet/shared/onnx';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { FIXTURE_NAMES, fixtureModelUrl, fixtureSamples, type FixtureName } from '../../../test/fixtures/onnx/fixture-data.mjs';
import { runVariantBuild, type BuiltVariant, type CalibrationSet } from '../src/compression/variant-builder.js';

/**
 * Issue 16, acceptance 1: on the PyTorch-exported CNN, MLP and transformer encoder, every profile the
 * hub builds is a model onnxruntime-node loads and runs, through the same build process the hub uses.
 * The budget accepts everything here: this is about valid models, not accuracy (other tests hold that).
 */
function calibration(name: FixtureName): CalibrationSet {
  const { input, dims, labels } = fixtureSamples(name, 48, 3);
  return { samples: 48, inputs: [{ name: 'input', datatype: 'FP32', shape: dims, data: input }], ...(labels ? { labels } : {}) };
}

async function runs(bytes: Uint8Array, inputs: readonly TypedTensor[]): Promise<number[]> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const feeds = Object.fromEntries(inputs.map((t) => [t.name, new ort.Tensor(DATATYPES[t.datatype].ort as ort.Tensor.Type, t.data as never, t.shape)]));
    const out = (await session.run(feeds)).logits!;
    expect([...(out.data as Float32Array)].every(Number.isFinite)).toBe(true);
    return out.dims.map(Number);
  } finally {
    await session.release();
  }
}

describe('every profile of the PyTorch fixtures', () => {
  it.each(FIXTURE_NAMES)('%s: every built variant loads and runs in onnxruntime-node', { timeout: 120_000 }, async (name) => {
    const model = new Uint8Array(readFileSync(fixtureModelUrl(name)));
    const goldenInputs = goldenInputTensors(readSignature(decodeModel(model)).inputs);
    const variants: BuiltVariant[] = [];
    const run = runVariantBuild(
      {
        model,
        goldenInputs,
        calibration: calibration(name),
        profiles: [...BUILT_PROFILES],
        budget: { minAgreement: 0, maxRelativeError: 10 },
        pruneSparsity: 0.5,
        calibrationMethod: 'minmax',
        timing: { runs: 2, warmup: 1 },
      },
      { onProgress: () => undefined, onVariant: (v) => variants.push(v) },
    );
    await run.done;
    expect(variants.map((v) => [v.profile, v.state, v.reason])).toEqual(BUILT_PROFILES.map((p) => [p, 'accepted', null]));
    for (const v of variants) {
      expect(await runs(v.bytes!, goldenInputs), `${name} ${v.profile}`).toEqual([1, 10]);
      if (v.profile === 'fp16') {
        expect(v.evaluation!.sizeRatio, `${name} fp16`).toBeLessThanOrEqual(0.55);
        continue;
      }
      // Issue 16, acceptance 2: every fixture has ≥ 256 KB of weights.
      expect(v.evaluation!.quantizedWeightShare, `${name} ${v.profile}`).toBeGreaterThanOrEqual(0.9);
      expect(v.evaluation!.sizeRatio, `${name} ${v.profile}`).toBeLessThanOrEqual(0.27);
    }
  });
});
