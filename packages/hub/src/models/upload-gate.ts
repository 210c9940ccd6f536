import { EdgefleetError } from '@edgefleet/shared';

/**
 * Admits at most `limit` model uploads at once, before their bodies are read. Each upload may buffer
 * up to the upload limit and then costs a heap-limited check worker plus onnxruntime's own memory,
 * so uploads are bounded in number, not only in size. `release` is idempotent: a request may end
 * through both its response and an abort.
 */
export function createUploadGate<K extends object>(limit: number) {
  const admitted = new WeakSet<K>();
  let inFlight = 0;
  return {
    admit(key: K): void {
      if (inFlight >= limit) {
        throw new EdgefleetError('TOO_MANY_REQUESTS', `${inFlight} model uploads are being received or checked (at most ${limit} at once): retry when one has finished`);
      }
      inFlight++;
      admitted.add(key);
    },
    release(key: K): void {
      if (!admitted.delete(key)) return;
      inFlight--;
    },
    get inFlight() {
      return inFlight;
    },
  };
}
