import type { WireTensor } from './worker-protocol.js';

// Dynamic batching policy: which queued jobs may run together. Pure: no workers, no timers.

export interface BatchableJob {
  inputs: WireTensor[];
  /** Dimension 0 shared by every input (at least 1; a job without one counts as 1 and runs alone). */
  rows: number;
  /** Names, types and trailing dims of the inputs; null = not batchable. Computed when first needed. */
  key?: string | null;
}

/** The rows (dimension 0) shared by all of a job's inputs; -1 when they do not share one. */
export function sharedRows(inputs: readonly WireTensor[]): number {
  const rows = inputs[0]?.dims[0] ?? -1;
  return inputs.every((t) => t.dims.length > 0 && t.dims[0] === rows) ? rows : -1;
}

/** The batch key of a job: only jobs with equal keys are joined along dimension 0. */
export function batchKey(job: BatchableJob): string | null {
  job.key ??= sharedRows(job.inputs) < 0 ? null : job.inputs.map((t) => `${t.name}:${t.type}:${t.dims.slice(1).join(',')}`).join('|');
  return job.key;
}

/**
 * Removes and returns the queue's first job, joined by later queued jobs of the same key (in queue
 * order) while their rows fit `maxBatch` and there are at most `share` jobs. Others keep their places.
 */
export function takeBatch<J extends BatchableJob>(queue: J[], maxBatch: number, share: number): J[] {
  const head = queue.shift()!;
  if (maxBatch <= 1 || share <= 1 || queue.length === 0 || batchKey(head) === null) return [head];
  const jobs = [head];
  let rows = head.rows;
  for (let i = 0; i < queue.length && jobs.length < share && rows < maxBatch; ) {
    const job = queue[i]!;
    if (rows + job.rows <= maxBatch && batchKey(job) === head.key) {
      jobs.push(job);
      rows += job.rows;
      queue.splice(i, 1);
    } else {
      i++;
    }
  }
  return jobs;
}
