import { Transform, type TransformCallback } from 'node:stream';
import { Decompress } from 'fzstd';

/**
 * A streaming zstd decoder (Node 20's zlib has none). fzstd is pure JavaScript, so the agent decodes
 * the same way on arm64 as on x64 with no native build. Memory stays at about one zstd window (the
 * compressor's window, a few MB at the usual levels) plus one block: the transfer file is never held
 * whole. fzstd skips the frame checksum; the caller checks the unpacked file's sha256 instead.
 * Corrupt data throws from push(); a stream that stops mid-frame throws when the end is pushed, so
 * a truncated file is an error rather than a short output.
 */
export function createZstdDecompress(): Transform {
  let transform: Transform;
  const decoder = new Decompress((data) => {
    if (data.byteLength > 0) transform.push(data);
  });
  transform = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
      try {
        decoder.push(chunk);
        done();
      } catch (err) {
        done(zstdError(err));
      }
    },
    flush(done: TransformCallback) {
      try {
        decoder.push(new Uint8Array(0), true);
        done();
      } catch (err) {
        done(zstdError(err));
      }
    },
  });
  return transform;
}

/** fzstd's errors carry a numeric code and terse messages ("unexpected EOF"): say what they mean here. */
function zstdError(err: unknown): Error {
  const message = (err as Error | undefined)?.message ?? String(err);
  return new Error(`the zstd data is corrupt or cut short (${message})`);
}
