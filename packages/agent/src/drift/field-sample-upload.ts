import { joinBinaryBody } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { FieldSampleCandidate } from '../inference/types.js';
import type { DriftMetrics } from '../local-api/metrics.js';
import type { Fetch } from '../tls/pinned-ca.js';

/**
 * Uploads field samples (opt-in) to `POST {apiUrl}/api/v1/field-samples`, best effort: a bounded
 * in-memory queue (the oldest is dropped when full, and counted), one upload at a time, no retry and
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
}

interface Queued {
  model: string;
  version: string;
  sample: FieldSampleCandidate;
}

const DEFAULT_MAX_QUEUED = 32;

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
  const authorization = `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}`;
  const queue: Queued[] = [];
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
    for (let next = queue.shift(); next && !stopped; next = queue.shift()) await upload(next);
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
      queue.push({ model, version, sample });
      while (queue.length > maxQueued) opts.metrics.fieldSample(queue.shift()!.sample.reason, 'dropped');
      kick();
    },
    async idle() {
      while (running) await running;
    },
    async stop() {
      stopped = true;
      abort.abort();
      for (const q of queue.splice(0)) opts.metrics.fieldSample(q.sample.reason, 'dropped');
      await running;
    },
  };
}
