import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { EdgefleetError } from './error-codes.js';
import { DriftManifestEntry } from './drift/schema.js';
import { TensorSpec } from './inference.js';

const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$' });

/** A tensor with its values as base64 of the raw little-endian bytes (exact and compact). */
export const EncodedTensor = Type.Object({
  name: Type.String(),
  datatype: Type.String(),
  shape: Type.Array(Type.Integer({ minimum: 0 })),
  b64: Type.String(),
});
export type EncodedTensor = Static<typeof EncodedTensor>;

/** Outputs must satisfy max |a−b| ≤ atol·(1+|b|) against the golden vector. */
export const Tolerance = Type.Object({ atol: Type.Number({ minimum: 0 }) });
export type Tolerance = Static<typeof Tolerance>;
export const DEFAULT_TOLERANCE: Tolerance = { atol: 1e-4 };

/** A golden file (golden-file.ts) stored as a hub artifact: fetched with the device's credentials, checked against this digest. */
export const GoldenRef = Type.Object({ sha256: Sha256Hex, size: Type.Integer({ minimum: 1 }) });
export type GoldenRef = Static<typeof GoldenRef>;

/**
 * The golden vector. Tensors of at most 64 KB in all travel inline; when they are larger, `inputs` and
 * `outputs` are empty and `ref` names the artifact that holds them all (the schema only grew: `ref`
 * is optional, so manifests signed before it still verify).
 */
export const Golden = Type.Object({
  inputs: Type.Array(EncodedTensor),
  outputs: Type.Array(EncodedTensor),
  tolerance: Tolerance,
  ref: Type.Optional(GoldenRef),
});
export type Golden = Static<typeof Golden>;

export const Transfer = Type.Object({
  encoding: Type.Union([Type.Literal('gzip'), Type.Literal('br'), Type.Literal('zstd')]),
  size: Type.Integer({ minimum: 0 }),
  sha256: Sha256Hex,
});

/** A model's name and a version's name: safe in URLs, file names and topic payloads. */
export const ModelName = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });
export const VersionName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]*$' });

/** One deployable variant of a model. `sha256`/`size` are those of the ONNX file the agent loads. */
export const Manifest = Type.Object({
  v: Type.Literal(1),
  model: ModelName,
  version: VersionName,
  profile: Type.String({ minLength: 1 }),
  sha256: Sha256Hex,
  size: Type.Integer({ minimum: 1 }),
  inputs: Type.Array(TensorSpec),
  outputs: Type.Array(TensorSpec),
  golden: Golden,
  transfer: Type.Optional(Transfer),
  /** The version's drift baseline; absent when the version has no reference or calibration data. */
  drift: Type.Optional(DriftManifestEntry),
  createdAt: Type.String(),
});
export type Manifest = Static<typeof Manifest>;

export const SignedManifest = Type.Object({
  manifest: Manifest,
  /** base64 ed25519 signature over `canonicalJson(manifest)`. */
  signature: Type.String({ minLength: 1 }),
});
export type SignedManifest = Static<typeof SignedManifest>;

const manifestValidator = Compile(Manifest);

/** JSON with object keys sorted at every level, so signer and verifier hash the same bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface SigningKeyPair {
  /** PKCS#8 PEM */
  privateKeyPem: string;
  /** SPKI PEM, pinned by agents at enrollment */
  publicKeyPem: string;
}

export function generateSigningKeyPair(): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

export function signManifest(manifest: Manifest, privateKeyPem: string): SignedManifest {
  const signature = sign(null, Buffer.from(canonicalJson(manifest)), createPrivateKey(privateKeyPem));
  return { manifest, signature: signature.toString('base64') };
}

/** Checks shape and ed25519 signature; throws INVALID_MODEL naming what is wrong. */
export function verifyManifest(signed: SignedManifest, publicKeyPem: string): Manifest {
  if (!manifestValidator.Check(signed.manifest)) {
    const first = manifestValidator.Errors(signed.manifest)[0];
    throw new EdgefleetError('INVALID_MODEL', `manifest does not match its schema: ${first?.instancePath ?? ''} ${first?.message ?? ''}`);
  }
  const ok = verify(
    null,
    Buffer.from(canonicalJson(signed.manifest)),
    createPublicKey(publicKeyPem),
    Buffer.from(signed.signature, 'base64'),
  );
  if (!ok) {
    throw new EdgefleetError(
      'INVALID_MODEL',
      `manifest signature of ${signed.manifest.model}@${signed.manifest.version} does not verify with the pinned hub key`,
    );
  }
  return signed.manifest;
}
