import { randomBytes } from 'node:crypto';
import {
  BENCHMARK_VERB,
  BenchmarkResult,
  deviceTopic,
  EdgefleetError,
  encodeMessage,
  PROFILES,
  type BenchmarkArgs,
  type BenchmarkRequestBody,
  type DeviceBenchmark,
  type MessageOf,
  type Profile,
  type SignedManifest,
} from '@edgefleet/shared';
import { Compile } from 'typebox/compile';
import type { Logger } from 'pino';
import type { RecordStreams } from '../broker/record-streams.js';
import type { DeviceRepo } from '../devices/device-repo.js';
import { artifactsOfManifest } from '../models/artifact-access.js';
import type { VariantRepo } from '../models/variant-repo.js';
import type { Db } from '../store/database.js';
import type { PlanRepo } from './plan-repo.js';
import { acceptedVariants, type VersionKey } from './plan-service.js';

/** How long a device may fetch the candidates of a benchmark request, and the hub waits for its answer. */
export const BENCHMARK_TTL_MS = 10 * 60 * 1000;
/** Benchmark request ids start with this, so cmd/results of other verbs are told apart without a lookup. */
const ID_PREFIX = 'bm-';

const checkResult = Compile(BenchmarkResult);

export interface BenchmarkAccepted {
  id: string;
  candidates: Array<{ profile: Profile; sha256: string }>;
}

export interface BenchmarkCounters {
  /** Benchmark results dropped: unknown or expired request, another device's, or a result that does not match BenchmarkResult. */
  ignored: number;
  stored: number;
}

/**
 * Device benchmarks: an operator asks an online device to measure a version's accepted variants (a
 * `benchmark` cmd, QoS 1, not retained), the device may fetch those candidates until it answers or
 * the request expires, and its cmd/result is checked and stored, then re-plans the device and its class.
 */
export function createBenchmarkService(deps: {
  db: Db;
  plans: PlanRepo;
  devices: Pick<DeviceRepo, 'get'>;
  variants: VariantRepo;
  broker: { publish(topic: string, payload: Buffer, opts: { retain: boolean }): Promise<void> };
  /** Called once a device's measurements are stored. */
  afterBenchmark: (deviceId: string, key: VersionKey) => void;
  log: Logger;
  clock?: () => number;
}) {
  const { db, plans, log } = deps;
  const clock = deps.clock ?? Date.now;
  const counters: BenchmarkCounters = { ignored: 0, stored: 0 };

  function candidatesOf(key: VersionKey, profiles: readonly Profile[] | undefined): SignedManifest[] {
    const accepted = acceptedVariants(deps.variants, key);
    if (!accepted) throw new EdgefleetError('MODEL_NOT_FOUND', `model ${key.model}@${key.version} does not exist`);
    const deployable = accepted.filter((v) => v.manifest !== null).sort((a, b) => PROFILES.indexOf(a.profile) - PROFILES.indexOf(b.profile));
    if (!profiles) return deployable.map((v) => v.manifest!);
    return profiles.map((p) => {
      const v = deployable.find((x) => x.profile === p);
      if (!v) throw new EdgefleetError('BAD_REQUEST', `profile ${p} is not an accepted variant of ${key.model}@${key.version}: accepted are ${deployable.map((x) => x.profile).join(', ')}`);
      return v.manifest!;
    });
  }

  function ignore(deviceId: string, id: string, why: string): void {
    counters.ignored++;
    log.warn({ deviceId, requestId: id, ignored: counters.ignored }, `benchmark result ignored: ${why}`);
  }

  /** The measurements of a checked result that name one of the request's candidates, as stored rows. */
  function rowsOf(deviceId: string, req: { model: string; version: string; artifacts: readonly string[] }, result: BenchmarkResult): DeviceBenchmark[] {
    const measuredAt = new Date(clock()).toISOString();
    // The hub's own record of the candidates names each profile; the device's word only picks which one.
    const profileBySha = new Map((acceptedVariants(deps.variants, req) ?? []).flatMap((v) => (v.sha256 && req.artifacts.includes(v.sha256) ? [[v.sha256, v.profile] as const] : [])));
    return result.measurements.flatMap((m) => {
      const profile = profileBySha.get(m.sha256);
      if (!profile) {
        log.warn({ deviceId, sha256: m.sha256 }, 'benchmark measurement of an artifact that was not a candidate: left out');
        return [];
      }
      const measured = m.ok && m.p50Ms !== undefined;
      return [{
        deviceId,
        model: req.model,
        version: req.version,
        profile,
        sha256: m.sha256,
        p50Ms: measured ? m.p50Ms! : null,
        p90Ms: measured ? (m.p90Ms ?? null) : null,
        runs: m.runs,
        error: measured ? null : (m.error ?? (m.ok ? 'the device reported no p50' : 'failed without an error message')),
        measuredAt,
      }];
    });
  }

  return {
    counters,
    /** Sends the benchmark cmd; 409 when the device is offline (a cmd is not retained: it would never arrive). */
    async request(deviceId: string, body: BenchmarkRequestBody): Promise<BenchmarkAccepted> {
      const device = deps.devices.get(deviceId);
      if (!device) throw new EdgefleetError('NOT_FOUND', `device ${deviceId} does not exist`);
      if (device.revoked) throw new EdgefleetError('CONFLICT', `device ${deviceId} is revoked: it cannot benchmark`);
      const key = { model: body.model, version: body.version };
      const candidates = candidatesOf(key, body.profiles);
      if (!device.online) throw new EdgefleetError('CONFLICT', `device ${deviceId} is offline: a benchmark cmd is not retained, so ask again when it is online`);
      const now = clock();
      const id = `${ID_PREFIX}${randomBytes(8).toString('hex')}`;
      const args: BenchmarkArgs = { model: body.model, version: body.version, candidates, expiresAt: now + BENCHMARK_TTL_MS };
      let payload: Buffer;
      try {
        payload = encodeMessage('cmd', { id, verb: BENCHMARK_VERB, args });
      } catch (err) {
        throw new EdgefleetError('PAYLOAD_TOO_LARGE', `the benchmark cmd for ${body.model}@${body.version} cannot be sent: ${(err as Error).message}; ask for fewer profiles`);
      }
      const artifacts = [...new Set(candidates.flatMap((c) => artifactsOfManifest(c.manifest)))];
      plans.insertRequest({ id, deviceId, ...key, artifacts, state: 'sent', error: null, requestedAt: now, expiresAt: args.expiresAt });
      try {
        await deps.broker.publish(deviceTopic(deviceId, 'cmd'), payload, { retain: false });
      } catch (err) {
        plans.finishRequest(id, 'failed', `not sent: ${(err as Error).message}`);
        throw new EdgefleetError('UNAVAILABLE', `the benchmark cmd could not be published to ${deviceId}: ${(err as Error).message}`);
      }
      log.info({ deviceId, requestId: id, model: body.model, version: body.version, candidates: candidates.length }, 'benchmark requested');
      return { id, candidates: candidates.map((c) => ({ profile: c.manifest.profile as Profile, sha256: c.manifest.sha256 })) };
    },
    list(deviceId: string): DeviceBenchmark[] {
      if (!deps.devices.get(deviceId)) throw new EdgefleetError('NOT_FOUND', `device ${deviceId} does not exist`);
      return plans.benchmarksOfDevice(deviceId);
    },
    /** Artifacts this device may fetch for its benchmark requests that wait for its answer and have not expired. */
    artifactsFor(deviceId: string): string[] {
      return plans.benchmarkArtifacts(deviceId, clock());
    },
    /** Follows committed cmd/results: the ones that answer our benchmark requests are stored. */
    follow(streams: Pick<RecordStreams, 'cmd/result'>): () => void {
      return streams['cmd/result'].subscribe((deviceId: string, msg: MessageOf<'cmd/result'>): void => {
        if (!msg.id.startsWith(ID_PREFIX)) return;
        const req = plans.request(msg.id);
        if (!req) return ignore(deviceId, msg.id, 'no such benchmark request');
        if (req.deviceId !== deviceId) return ignore(deviceId, msg.id, `the request was sent to ${req.deviceId}, not this device`);
        if (clock() > req.expiresAt) return ignore(deviceId, msg.id, 'the request has expired');
        if (req.state !== 'sent') return ignore(deviceId, msg.id, `the request is already ${req.state}`);
        if (!msg.ok) {
          plans.finishRequest(msg.id, 'failed', msg.error ?? 'the device reported a failure without an error message');
          log.info({ deviceId, requestId: msg.id, error: msg.error }, 'benchmark failed on the device');
          return;
        }
        if (!checkResult.Check(msg.result)) {
          const first = checkResult.Errors(msg.result)[0];
          const why = `the result does not match BenchmarkResult at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}`;
          plans.finishRequest(msg.id, 'failed', why);
          return ignore(deviceId, msg.id, why);
        }
        const result = msg.result;
        if (result.model !== req.model || result.version !== req.version) {
          const why = `the result is for ${result.model}@${result.version}, the request for ${req.model}@${req.version}`;
          plans.finishRequest(msg.id, 'failed', why);
          return ignore(deviceId, msg.id, why);
        }
        const rows = rowsOf(deviceId, req, result);
        db.transaction(() => {
          for (const row of rows) plans.saveBenchmark(row);
          plans.finishRequest(msg.id, 'done', null);
        })();
        counters.stored += rows.length;
        log.info({ deviceId, requestId: msg.id, measurements: rows.length, threads: result.threads }, 'benchmark stored');
        deps.afterBenchmark(deviceId, { model: req.model, version: req.version });
      });
    },
  };
}
export type BenchmarkService = ReturnType<typeof createBenchmarkService>;
