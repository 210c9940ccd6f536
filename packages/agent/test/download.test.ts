import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDownloader, type DownloadRequest } from '../src/models/download.js';
import { fileSize } from '../src/models/model-files.js';
import { startArtifactServer, type ArtifactServer } from './support/artifact-server.js';
import { silentLogger, tempDir } from './support/temp.js';

const creds = { username: 'dev-test', password: 's3cret' };
const content = randomBytes(256 * 1024 + 123);
const sha256 = createHash('sha256').update(content).digest('hex');

describe('artifact download with Range resume', () => {
  let server: ArtifactServer;
  let dir: { path: string; remove: () => Promise<void> };

  beforeEach(async () => {
    server = await startArtifactServer(creds);
    server.files.set(sha256, content);
    dir = await tempDir('download');
  });
  afterEach(async () => {
    await server.close();
    await dir.remove();
  });

  const request = (overrides: Partial<DownloadRequest> = {}): DownloadRequest => ({
    url: `${server.apiUrl}/api/v1/artifacts/${sha256}`,
    partPath: join(dir.path, `${sha256}.part`),
    finalPath: join(dir.path, `${sha256}.onnx`),
    sha256,
    size: content.byteLength,
    auth: creds,
    ...overrides,
  });

  it('resumes a cut-off transfer with Range from where it stopped', async () => {
    const cut = 100_000;
    server.cutAfter.push(cut);
    const progress: number[] = [];
    await createDownloader({ logger: silentLogger, retryDelayMs: 10 })(request({ onProgress: (p) => progress.push(p) }));
    expect(server.requests).toHaveLength(2);
    expect(server.requests[0]!.range).toBeUndefined();
    expect(server.requests[0]!.authorization).toBe(`Basic ${Buffer.from('dev-test:s3cret').toString('base64')}`);
    expect(server.requests[1]!.range).toBe(`bytes=${cut}-`);
    const final = await readFile(request().finalPath);
    expect(createHash('sha256').update(final).digest('hex')).toBe(sha256);
    expect(await fileSize(request().partPath)).toBeUndefined();
    expect(progress.at(-1)).toBe(1);
    expect(progress.every((p, i) => i === 0 || p >= progress[i - 1]!)).toBe(true);
  });

  it('continues a part file left by an earlier run (restart)', async () => {
    server.cutAfter.push(70_000);
    await expect(createDownloader({ logger: silentLogger, retries: 0 })(request())).rejects.toThrow(/failed after 1 attempts/);
    expect(await fileSize(request().partPath)).toBe(70_000);

    // A new downloader, as after an agent restart.
    await createDownloader({ logger: silentLogger })(request());
    expect(server.requests.map((r) => r.range)).toEqual([undefined, 'bytes=70000-']);
    expect(createHash('sha256').update(await readFile(request().finalPath)).digest('hex')).toBe(sha256);
  });

  it('restarts from zero when the server answers 200 to a Range request', async () => {
    await writeFile(request().partPath, content.subarray(0, 5000));
    server.ignoreRange = true;
    await createDownloader({ logger: silentLogger })(request());
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=5000-']);
    expect((await stat(request().finalPath)).size).toBe(content.byteLength);
    expect(createHash('sha256').update(await readFile(request().finalPath)).digest('hex')).toBe(sha256);
  });

  it('starts over once when a resumed part file holds wrong bytes', async () => {
    await writeFile(request().partPath, randomBytes(5000));
    await createDownloader({ logger: silentLogger })(request());
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=5000-', undefined]);
    expect(createHash('sha256').update(await readFile(request().finalPath)).digest('hex')).toBe(sha256);
  });

  it('refuses a file whose digest is not the expected one, and deletes it', async () => {
    const wrong = 'f'.repeat(64);
    server.files.set(wrong, content);
    const req = request({ url: `${server.apiUrl}/api/v1/artifacts/${wrong}`, sha256: wrong });
    await expect(createDownloader({ logger: silentLogger })(req)).rejects.toMatchObject({ code: 'INVALID_MODEL' });
    expect(await fileSize(req.partPath)).toBeUndefined();
    expect(await fileSize(req.finalPath)).toBeUndefined();
  });

  it('refuses a server that sends more than the manifest size, writing no byte past it and deleting the part file', async () => {
    const size = 100_000;
    const req = request({ size });
    await expect(createDownloader({ logger: silentLogger, retryDelayMs: 10 })(req)).rejects.toMatchObject({
      code: 'INVALID_MODEL',
      message: `${req.url} sent more than the manifest's ${size} bytes`,
    });
    expect(server.requests).toHaveLength(1);
    expect(await fileSize(req.partPath)).toBeUndefined();
    expect(await fileSize(req.finalPath)).toBeUndefined();
  });

  it('does not retry bad credentials', async () => {
    await expect(createDownloader({ logger: silentLogger, retryDelayMs: 10 })(request({ auth: { username: 'x', password: 'y' } }))).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    });
    expect(server.requests).toHaveLength(1);
  });
});
