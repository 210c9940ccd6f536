import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Manifest } from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { hasTool } from '../../../test/support/tools.js';
import { createDownloader } from '../src/models/download.js';
import { fetchModelFile } from '../src/models/fetch-model.js';
import { ensureModelsDir, modelPath, modelsDir } from '../src/models/model-files.js';
import { createZstdDecompress } from '../src/models/zstd.js';
import { startArtifactServer, type ArtifactServer } from './support/artifact-server.js';
import { startDeploymentRig } from './support/deployment-rig.js';
import { sha256Of } from './support/manifests.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

// The zstd bytes come from Debian's zstd CLI (the reference implementation), never from the code under test.
const zstdCli = hasTool('zstd', 'zstd');

/** `zstd` reading stdin, as the hub would stream a file through it; `--stream-size` records the content size. */
function zstd(bytes: Uint8Array, ...args: string[]): Buffer {
  return execFileSync('zstd', ['-q', '-c', ...args], { input: bytes, maxBuffer: 64 * 1024 * 1024 });
}

/** Compressible but not trivial: repeated text with random bytes mixed in, so zstd emits several block kinds. */
function sampleBytes(size: number): Buffer {
  const noise = randomBytes(size);
  const text = Buffer.from('edgefleet streams zstd transfer files block by block; ');
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = i % 7 === 0 ? noise[i]! : text[i % text.length]!;
  return out;
}

/** Buffers compared by digest: vitest's deep equality walks a large buffer byte by byte, slowly. */
const same = (a: Uint8Array, b: Uint8Array) => expect(sha256Of(a)).toBe(sha256Of(b));

/** Runs bytes through the decoder in chunks of `chunkSize`, as a file read would deliver them. */
async function decodeInChunks(bytes: Uint8Array, chunkSize: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.byteLength; i += chunkSize) chunks.push(Buffer.from(bytes.subarray(i, i + chunkSize)));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    createZstdDecompress(),
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        out.push(chunk);
        done();
      },
    }),
  );
  return Buffer.concat(out);
}

/** A zstd frame whose first block header claims the reserved block type: corrupt in a way any decoder must notice. */
function withReservedBlockType(frame: Buffer): Buffer {
  const bad = Buffer.from(frame);
  // Without a content size or dictionary the frame header is magic (4), descriptor (1), window (1).
  expect(bad[4]! & 0b1110_0011).toBe(0);
  bad[6] = bad[6]! | 0b110;
  return bad;
}

describe.skipIf(!zstdCli)('streaming zstd decoder', () => {
  it('decodes what the zstd CLI wrote, whatever the chunk boundaries, at several levels', async () => {
    const original = sampleBytes(600_000);
    for (const level of ['-1', '-3', '-19']) {
      const packed = zstd(original, level);
      same(await decodeInChunks(packed, 65_536), original);
      same(await decodeInChunks(packed, 997), original);
    }
    // With the size known, the frame header records it and a checksum follows the frame.
    const withSize = zstd(original, `--stream-size=${original.byteLength}`, '--check');
    expect(withSize[4]! >> 6).not.toBe(0);
    same(await decodeInChunks(withSize, 4096), original);
    // A small input known in advance is one "single segment": the window is the whole content.
    const small = sampleBytes(60_000);
    const singleSegment = zstd(small, `--stream-size=${small.byteLength}`);
    expect((singleSegment[4]! >> 5) & 1).toBe(1);
    same(await decodeInChunks(singleSegment, 1000), small);
  });

  it('decodes concatenated frames and an empty input', async () => {
    const a = sampleBytes(50_000);
    const b = randomBytes(30_000);
    same(await decodeInChunks(Buffer.concat([zstd(a), zstd(b)]), 8192), Buffer.concat([a, b]));
    same(await decodeInChunks(zstd(new Uint8Array(0)), 8192), Buffer.alloc(0));
  });

  it('emits output before the input ends: the whole transfer is never held', async () => {
    const original = sampleBytes(2_000_000);
    const packed = zstd(original, '-3');
    const decoder = createZstdDecompress();
    let out = 0;
    decoder.on('data', (chunk: Buffer) => (out += chunk.byteLength));
    decoder.write(packed.subarray(0, packed.byteLength >> 1));
    await eventually(() => out > 0, 'decoded bytes from the first half of the stream');
    expect(out).toBeLessThan(original.byteLength);
    const ended = new Promise((resolve) => decoder.on('end', resolve));
    decoder.end(packed.subarray(packed.byteLength >> 1));
    await ended;
    expect(out).toBe(original.byteLength);
  });

  it('fails on data that is not zstd, on a corrupt block and on a stream cut short', async () => {
    const packed = zstd(sampleBytes(300_000));
    await expect(decodeInChunks(randomBytes(1000), 256)).rejects.toThrow(/^the zstd data is corrupt or cut short \(invalid zstd data\)$/);
    await expect(decodeInChunks(withReservedBlockType(packed), 4096)).rejects.toThrow(/^the zstd data is corrupt or cut short \(invalid block type\)$/);
    for (const keep of [3, 10, packed.byteLength >> 1, packed.byteLength - 1]) {
      await expect(decodeInChunks(packed.subarray(0, keep), 4096), `cut after ${keep} bytes`).rejects.toThrow(/^the zstd data is corrupt or cut short \(unexpected EOF\)$/);
    }
    await expect(decodeInChunks(Buffer.concat([packed, Buffer.from('trailing')]), 4096)).rejects.toThrow(/corrupt or cut short/);
  });
});

describe.skipIf(!zstdCli)('fetching a model with a zstd transfer file', () => {
  const creds = { username: 'dev-zstd', password: 'secret-zstd' };
  /** About 530 KB: several zstd blocks. */
  const model = buildMlp({ inputSize: 256, hidden: [512], outputSize: 4, seed: 7 });
  const packed = zstd(model, '-19', `--stream-size=${model.byteLength}`);
  let server: ArtifactServer;
  let dir: { path: string; remove: () => Promise<void> };

  beforeEach(async () => {
    server = await startArtifactServer(creds);
    dir = await tempDir('zstd');
  });
  afterEach(async () => {
    await server.close();
    await dir.remove();
  });

  /** A manifest for `model` whose transfer copy is `transferBytes` (served by the artifact server). */
  function manifestWith(transferBytes: Uint8Array, claims: Partial<Pick<Manifest, 'sha256' | 'size'>> = {}): Manifest {
    server.files.set(sha256Of(transferBytes), transferBytes);
    return {
      v: 1,
      model: 'clf',
      version: '1.0.0',
      profile: 'pruned',
      sha256: claims.sha256 ?? sha256Of(model),
      size: claims.size ?? model.byteLength,
      inputs: [],
      outputs: [],
      golden: { inputs: [], outputs: [], tolerance: { atol: 1e-4 } },
      transfer: { encoding: 'zstd', size: transferBytes.byteLength, sha256: sha256Of(transferBytes) },
      createdAt: new Date(0).toISOString(),
    };
  }

  const fetch = (manifest: Manifest, signal?: AbortSignal) =>
    fetchModelFile(manifest, {
      stateDir: dir.path,
      apiUrl: server.apiUrl,
      auth: creds,
      download: createDownloader({ logger: silentLogger, retryDelayMs: 10 }),
      ...(signal ? { signal } : {}),
    });

  const leftOver = async () => readdir(modelsDir(dir.path));

  it('downloads the transfer file with Range resume, unpacks it and keeps only the verified model', async () => {
    expect(packed.byteLength).toBeLessThan(model.byteLength);
    server.cutAfter.push(packed.byteLength >> 1);
    const path = await fetch(manifestWith(packed));
    expect(path).toBe(modelPath(dir.path, sha256Of(model)));
    same(await readFile(path), model);
    // The second request resumes where the first stopped (up to the cut: a dropped connection may lose bytes in flight).
    expect(server.requests).toHaveLength(2);
    expect(server.requests[0]!.range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(server.requests[1]!.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(packed.byteLength >> 1);
    expect(await leftOver()).toEqual([`${sha256Of(model)}.onnx`]);
  });

  it('a corrupt zstd stream is INVALID_MODEL and leaves nothing behind', async () => {
    const bad = withReservedBlockType(zstd(model, '-3'));
    await expect(fetch(manifestWith(bad))).rejects.toMatchObject({
      code: 'INVALID_MODEL',
      message: 'cannot unpack the zstd transfer file of clf@1.0.0: the zstd data is corrupt or cut short (invalid block type)',
    });
    expect(await leftOver()).toEqual([]);
  });

  it('a truncated zstd stream is INVALID_MODEL and leaves nothing behind', async () => {
    const cut = packed.subarray(0, packed.byteLength - 100);
    await expect(fetch(manifestWith(cut))).rejects.toMatchObject({
      code: 'INVALID_MODEL',
      message: 'cannot unpack the zstd transfer file of clf@1.0.0: the zstd data is corrupt or cut short (unexpected EOF)',
    });
    expect(await leftOver()).toEqual([]);
  });

  it('an unpacked file with the wrong digest is INVALID_MODEL and leaves nothing behind', async () => {
    const claimed = 'a'.repeat(64);
    await expect(fetch(manifestWith(packed, { sha256: claimed }))).rejects.toMatchObject({
      code: 'INVALID_MODEL',
      message: `unpacked zstd file has sha256 ${sha256Of(model)} and ${model.byteLength} bytes, expected ${claimed} and ${model.byteLength} bytes`,
    });
    expect(await leftOver()).toEqual([]);
  });

  it('stops unpacking as soon as the output outgrows the manifest size', async () => {
    const size = 100_000;
    await expect(fetch(manifestWith(packed, { size }))).rejects.toMatchObject({
      code: 'INVALID_MODEL',
      message: `cannot unpack the zstd transfer file of clf@1.0.0: it unpacks to more than the expected ${size} bytes`,
    });
    expect(await leftOver()).toEqual([]);
  });

  it('an aborted deployment stops unpacking with the abort, not as a bad file, and leaves nothing behind', async () => {
    const manifest = manifestWith(packed);
    // The verified transfer copy is already there from an earlier run: only the unpacking is left.
    await ensureModelsDir(dir.path);
    await writeFile(join(modelsDir(dir.path), `${manifest.transfer!.sha256}.zstd`), packed);
    const abort = new AbortController();
    abort.abort();
    await expect(fetch(manifest, abort.signal)).rejects.toMatchObject({ name: 'AbortError' });
    expect(server.requests).toEqual([]);
    expect(await leftOver()).toEqual([]);
  });
});

describe.skipIf(!zstdCli)('deploying a model that travels zstd-compressed', () => {
  it('verifies the signed manifest, unpacks, runs the golden check and activates it', async () => {
    const dir = await tempDir('zstd-deploy');
    const rig = await startDeploymentRig({ stateDir: dir.path, scratchDir: dir.path, creds: { username: 'dev-zd', password: 'secret-zd' }, retryDelayMs: 30 });
    try {
      const model = buildMlp({ inputSize: 256, hidden: [512], outputSize: 4, seed: 11 });
      const packed = zstd(model, '-19');
      rig.server.files.set(sha256Of(packed), packed);
      const assignment = await rig.assignment({
        name: 'clf',
        version: '1.0.0',
        bytes: model,
        transfer: { encoding: 'zstd', size: packed.byteLength, sha256: sha256Of(packed) },
      });
      const got = await rig.apply(assignment);
      expect(got.at(-1)).toMatchObject({ phase: 'active', version: '1.0.0' });
      expect(got.some((e) => e.phase === 'failed')).toBe(false);
      // Only the packed copy was fetched; the model file itself never crossed the wire.
      expect(rig.server.requests.map((r) => r.path)).toEqual([`/api/v1/artifacts/${sha256Of(packed)}`]);
      expect(rig.table.get('clf')?.version).toBe('1.0.0');
      expect((await readdir(modelsDir(dir.path))).filter((n) => n.endsWith('.zstd') || n.endsWith('.tmp') || n.endsWith('.part'))).toEqual([]);
    } finally {
      await rig.stop();
      await dir.remove();
    }
  });
});
