import { EdgefleetError, type FieldSampleInfo, type TensorSpec } from '@edgefleet/shared';
import { parseCalibration } from '../models/calibration-data.js';
import type { ArtifactStore } from '../models/artifact-store.js';
import { extraFieldSampleKey } from './field-sample-body.js';
import type { FieldSampleRateLimit } from './field-sample-rate.js';
import type { FieldSampleRepo, StoredFieldSample } from './field-sample-repo.js';

/** What a device says about a sample, from the upload's query string (strings as they came). */
export interface FieldSampleQuery {
  model: string;
  version: string;
  reason: string;
  margin?: string | undefined;
  entropy?: string | undefined;
  takenAt?: string | undefined;
}

export interface FieldSampleUpload extends FieldSampleQuery {
  deviceId: string;
  body: Uint8Array;
  contentType: 'application/json' | 'application/octet-stream';
  /** Inference-Header-Content-Length of the binary form; absent for JSON. */
  headerLength: string | undefined;
}

export interface FieldSampleServiceDeps {
  repo: FieldSampleRepo;
  artifacts: ArtifactStore;
  /** The input signature of a model version, undefined when the version does not exist. */
  inputsOf(model: string, version: string): readonly TensorSpec[] | undefined;
  /**
   * True when anything else in the shared artifact store uses this digest: model versions, variants,
   * calibration data, drift baselines and references, manifests given to devices.
   */
  isReferenced(sha256: string): boolean;
  /** The model versions a device last reported installed (active or standby). */
  reportedModels(deviceId: string): ReadonlyArray<{ name: string; version: string }>;
  rate: FieldSampleRateLimit;
  /** Samples kept per model version; the oldest go first. */
  keepPerVersion: number;
  now?: () => number;
}

function bad(message: string): never {
  throw new EdgefleetError('BAD_REQUEST', message);
}

/** A score the device computed: absent, or a finite number. */
function optionalNumber(name: string, raw: string | undefined): number | null {
  if (raw === undefined || raw === '') return null;
  const n = Number(raw);
  if (!Number.isFinite(n)) bad(`${name}="${raw}" is not a finite number`);
  return n;
}

function takenAtMs(raw: string | undefined, now: number): number {
  if (raw === undefined || raw === '') return now;
  const t = /^\d{4}-\d{2}-\d{2}T/.test(raw) ? Date.parse(raw) : Number.NaN;
  if (!Number.isFinite(t)) bad(`takenAt="${raw}" is not an ISO 8601 date-time (e.g. 2026-01-31T12:00:00Z)`);
  return t;
}

/**
 * One sample's inputs, checked by the calibration parser: the model's inputs, batch 1, finite. Its
 * messages speak of calibration data; the prefix says what was actually refused.
 */
function checkInputs(body: Uint8Array, headerLength: string | undefined, specs: readonly TensorSpec[]): void {
  let set;
  try {
    set = parseCalibration(body, headerLength, specs, 'field sample');
  } catch (err) {
    if (err instanceof EdgefleetError) bad(`field sample refused: ${err.message}`);
    throw err;
  }
  if (set.labels) bad('field sample refused: it carries a "labels" tensor; a field sample holds only the model inputs');
  if (set.samples !== 1) bad(`field sample refused: its inputs hold ${set.samples} samples along dim 0; a field sample is one input at batch 1`);
  const extra = extraFieldSampleKey(body, headerLength);
  if (extra !== undefined) bad(`field sample refused: unknown key "${extra}"; a field sample holds only its inputs (name, datatype, shape, data or parameters.binary_data_size)`);
}

/**
 * Field samples: raw inputs devices that opted in send (random ones, and hard examples), kept per model
 * version up to a cap as material for fine-tuning. The body is stored as it came, so it can be replayed
 * against the model's infer API.
 */
export function createFieldSampleService(deps: FieldSampleServiceDeps) {
  const now = deps.now ?? Date.now;
  // Store, insert and prune one upload at a time: a pruned digest's file must not be deleted while another upload of the same bytes is between its write and its row.
  let turn: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const run = turn.then(work, work);
    turn = run.catch(() => undefined);
    return run;
  };

  return {
    /**
     * Takes one of the device's upload slots, or refuses 429 (with retryAfterSeconds): called before
     * the body is read, so an over-limit device costs no parse.
     */
    admit(deviceId: string): void {
      const slot = deps.rate.take(deviceId, now());
      if (!slot.ok) {
        throw Object.assign(new EdgefleetError('TOO_MANY_REQUESTS', `device ${deviceId} is over its field-sample limit: retry after ${slot.retryAfterSeconds} s`), {
          retryAfterSeconds: slot.retryAfterSeconds,
        });
      }
    },
    /** Stores one sample of a device already admitted. */
    async upload(u: FieldSampleUpload): Promise<FieldSampleInfo> {
      if (u.reason !== 'random' && u.reason !== 'hard') bad(`reason="${u.reason}": expected random or hard`);
      const margin = optionalNumber('margin', u.margin);
      const entropy = optionalNumber('entropy', u.entropy);
      const receivedAtMs = now();
      const taken = takenAtMs(u.takenAt, receivedAtMs);
      const specs = deps.inputsOf(u.model, u.version);
      if (!specs) bad(`model ${u.model}@${u.version} does not exist: a field sample names a model version the hub has`);
      if (!deps.reportedModels(u.deviceId).some((m) => m.name === u.model && m.version === u.version)) {
        throw new EdgefleetError('FORBIDDEN', `device ${u.deviceId} does not report ${u.model}@${u.version} installed: a device uploads field samples only for versions it runs (active or standby)`);
      }
      checkInputs(u.body, u.headerLength, specs);
      return serial(async () => {
        const { sha256, size } = await deps.artifacts.put(u.body);
        const { stored, unreferenced } = deps.repo.add(
          {
            deviceId: u.deviceId,
            model: u.model,
            version: u.version,
            reason: u.reason as 'random' | 'hard',
            margin,
            entropy,
            sha256,
            size,
            contentType: u.contentType,
            headerLength: u.headerLength === undefined ? null : Number(u.headerLength),
            takenAtMs: taken,
            receivedAtMs,
          },
          deps.keepPerVersion,
        );
        for (const sha of unreferenced) if (!deps.isReferenced(sha)) await deps.artifacts.remove(sha);
        return stored.info;
      });
    },
    list(model: string, version: string, reason: 'random' | 'hard' | undefined, limit: number): FieldSampleInfo[] {
      if (!deps.inputsOf(model, version)) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${model}@${version} does not exist`);
      return deps.repo.list(model, version, reason, limit);
    },
    /** A stored sample and the path of its body. */
    get(id: number): StoredFieldSample & { path: string } {
      const s = deps.repo.get(id);
      if (!s || deps.artifacts.sizeOf(s.info.sha256) === undefined) throw new EdgefleetError('NOT_FOUND', `field sample ${id} does not exist`);
      return { ...s, path: deps.artifacts.pathOf(s.info.sha256) };
    },
  };
}
export type FieldSampleService = ReturnType<typeof createFieldSampleService>;
