import { Transform, type TransformCallback } from 'node:stream';

/**
 * Passes bytes through and fails once more than `limit` came out: a transfer file that unpacks to
 * more than the manifest's size is wrong anyway, and stopping early keeps it from filling the disk
 * past the space that was checked for it.
 */
export function createSizeLimit(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
      seen += chunk.byteLength;
      if (seen > limit) {
        done(new Error(`it unpacks to more than the expected ${limit} bytes`));
        return;
      }
      done(null, chunk);
    },
  });
}
