import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  compareWithGolden,
  decodeTensor,
  encodeTensor,
  generateSigningKeyPair,
  goldenInputs,
  signManifest,
  verifyManifest,
  type Manifest,
} from '@edgefleet/shared';

const keys = generateSigningKeyPair();

function sampleManifest(): Manifest {
  const inputs = goldenInputs([{ name: 'x', datatype: 'FP32', shape: [-1, 3] }]);
  return {
    v: 1,
    model: 'demo',
    version: '1.0.0',
    profile: 'fp32',
    sha256: 'a'.repeat(64),
    size: 10,
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }],
    golden: { inputs: inputs.map(encodeTensor), outputs: [], tolerance: { atol: 1e-4 } },
    createdAt: '2026-11-23T00:00:00.000Z',
  };
}

describe('manifest', () => {
  it('signs and verifies, independent of key order', () => {
    const signed = signManifest(sampleManifest(), keys.privateKeyPem);
    const reordered = JSON.parse(JSON.stringify({ signature: signed.signature, manifest: { ...signed.manifest } }));
    expect(verifyManifest(reordered, keys.publicKeyPem).model).toBe('demo');
  });

  it('rejects a tampered manifest, naming it', () => {
    const signed = signManifest(sampleManifest(), keys.privateKeyPem);
    signed.manifest.sha256 = 'b'.repeat(64);
    expect(() => verifyManifest(signed, keys.publicKeyPem)).toThrow(/signature of demo@1.0.0 does not verify/);
  });

  it('rejects a signature from another key', () => {
    const signed = signManifest(sampleManifest(), generateSigningKeyPair().privateKeyPem);
    expect(() => verifyManifest(signed, keys.publicKeyPem)).toThrow(/does not verify/);
  });

  it('canonical JSON sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 1, e: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"e":2,"f":1}]},"b":1}');
  });
});

describe('golden vectors', () => {
  it('are reproducible and round-trip through base64', () => {
    const [a] = goldenInputs([{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], 7);
    const [b] = goldenInputs([{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], 7);
    expect(a!.shape).toEqual([1, 4]);
    expect(a!.values).toEqual(b!.values);
    const back = decodeTensor(encodeTensor(a!));
    expect(back.values).toEqual(Array.from(Float32Array.from(a!.values)));
  });

  it('uses small non-negative integers for integer inputs', () => {
    const [t] = goldenInputs([{ name: 'ids', datatype: 'INT64', shape: [2, 8] }]);
    expect(t!.values.every((v) => Number.isInteger(v) && v >= 0 && v < 10)).toBe(true);
    expect(decodeTensor(encodeTensor(t!)).values).toEqual(t!.values);
  });

  it('compares with tolerance atol·(1+|b|)', () => {
    const exp = [{ name: 'y', datatype: 'FP32' as const, shape: [2], values: [1, 100] }];
    expect(compareWithGolden([{ ...exp[0]!, values: [1.0001, 100.005] }], exp, { atol: 1e-4 }).ok).toBe(true);
    const bad = compareWithGolden([{ ...exp[0]!, values: [1.01, 100] }], exp, { atol: 1e-4 });
    expect(bad.ok).toBe(false);
    expect(bad.reason).toMatch(/output y\[0\]/);
    expect(compareWithGolden([], exp, { atol: 1e-4 }).reason).toMatch(/missing/);
  });
});
