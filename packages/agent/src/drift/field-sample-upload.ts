import { joinBinaryBody } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { FieldSampleCandidate } from '../inference/types.js';
import type { DriftMetrics } from '../local-api/metrics.js';
import type { Fetch } from '../tls/pinned-ca.js';

/**
 * Uploads field samples (opt-in) to `POST {apiUrl}/api/v1/field-samples`, best effort: an
 * in-memory queue bounded in count and in bytes (the oldest is dropped when over either, and counted), one upload at a time, no retry and
 * nothing kept across restarts. A sample is evidence for retraining, not a record the hub must have.
 */
export interface FieldSampleUploader {
  enqueue(model: string, version: string, sample: FieldSampleCandidate): void;
  /** Resolves once the queue is empty (tests; the agent does not wait). */
  idle(): Promise<void>;
  /** Drops what is queued (counted), aborts the upload in flight. */
  stop(): Promise<void>;
}

export interface FieldSampleUploaderOptions {
  apiUrl: string;
  auth: { username: string; password: string };
  /** The pinned-TLS fetch of the downloader. */
  fetch: Fetch;
  metrics: DriftMetrics;
  logger: Logger;
  /** Most samples waiting (default 32). */
  maxQueued?: number;
  /** Most input bytes waiting (default 32 MB): samples are up to megabytes each. */
  maxQueuedBytes?: number;
}

interface Queued {
  model: string;
  version: string;
  sample: FieldSampleCandidate;
  bytes: number;
}

const DEFAULT_MAX_QUEUED = 32;
const DEFAULT_MAX_QUEUED_BYTES = 32 * 1024 * 1024;

function sampleBytes(sample: FieldSampleCandidate): number {
  let bytes = 0;
  for (const t of sample.inputs) bytes += t.data.byteLength;
  return bytes;
}

/** The sample's inputs as an Open Inference Protocol binary body: JSON header, then each tensor's raw bytes. */
export function encodeFieldSample(sample: FieldSampleCandidate): { body: Buffer; headerLength: number } {
  const inputs = sample.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: t.data.byteLength } }));
  return joinBinaryBody({ inputs }, sample.inputs.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
}

export function fieldSampleUrl(apiUrl: string, model: string, version: string, sample: FieldSampleCandidate): string {
  const query = new URLSearchParams({ model, version, reason: sample.reason, takenAt: String(sample.takenAt) });
  if (sample.margin !== null) query.set('margin', String(sample.margin));
  if (sample.entropy !== null) query.set('entropy', String(sample.entropy));
  return `${apiUrl.replace(/\/+$/, '')}/api/v1/field-samples?${query}`;
}

export function createFieldSampleUploader(opts: FieldSampleUploaderOptions): FieldSampleUploader {
  const log = opts.logger.child({ module: 'field-samples' });
  const maxQueued = opts.maxQueued ?? DEFAULT_MAX_QUEUED;
  const maxQueuedBytes = opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  const authorization = `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}`;
  const queue: Queued[] = [];
  let queuedBytes = 0;

  function next(): Queued | undefined {
    const q = queue.shift();
    if (q) queuedBytes -= q.bytes;
    return q;
  }
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  let stopped = false;

  async function upload({ model, version, sample }: Queued): Promise<void> {
    const { body, headerLength } = encodeFieldSample(sample);
    try {
      const res = await opts.fetch(fieldSampleUrl(opts.apiUrl, model, version, sample), {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) },
        body,
        signal: abort.signal,
      });
      await res.body?.cancel();
      if (res.ok) {
        opts.metrics.fieldSample(sample.reason, 'uploaded');
      } else {
        const outcome = res.status >= 400 && res.status < 500 ? 'refused' : 'failed';
        opts.metrics.fieldSample(sample.reason, outcome);
        log.warn({ model, version, reason: sample.reason, status: res.status }, res.status === 429 ? 'field sample over the hub quota; not uploaded' : 'field sample upload refused');
      }
    } catch (err) {
      opts.metrics.fieldSample(sample.reason, abort.signal.aborted ? 'dropped' : 'failed');
      if (!abort.signal.aborted) log.warn({ model, version, reason: sample.reason, err: (err as Error).message }, 'field sample upload failed; not retried');
    }
  }

  async function drain(): Promise<void> {
    for (let q = next(); q && !stopped; q = next()) await upload(q);
  }

  function kick(): void {
    running ??= drain().finally(() => {
      running = undefined;
      // Queued between the loop's last look and here.
      if (queue.length > 0 && !stopped) kick();
    });
  }

  return {
    enqueue(model, version, sample) {
      if (stopped) {
        opts.metrics.fieldSample(sample.reason, 'dropped');
        return;
      }
      const bytes = sampleBytes(sample);
      queue.push({ model, version, sample, bytes });
      queuedBytes += bytes;
      while (queue.length > maxQueued || (queuedBytes > maxQueuedBytes && queue.length > 0)) opts.metrics.fieldSample(next()!.sample.reason, 'dropped');
      kick();
    },
    async idle() {
      while (running) await running;
    },
    async stop() {
      stopped = true;
      abort.abort();
      for (let q = next(); q; q = next()) opts.metrics.fieldSample(q.sample.reason, 'dropped');
      await running;
    },
  };
}
