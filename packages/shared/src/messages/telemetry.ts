import { Type, type Static } from 'typebox';
import { EnvelopeFields } from '../envelope.js';

export const SystemStats = Type.Object({
  cpuPercent: Type.Number({ minimum: 0 }),
  memUsedMb: Type.Number({ minimum: 0 }),
  memTotalMb: Type.Number({ minimum: 0 }),
  temperatureC: Type.Union([Type.Number(), Type.Null()]),
  diskUsedPercent: Type.Union([Type.Number({ minimum: 0 }), Type.Null()]),
  agentRssMb: Type.Number({ minimum: 0 }),
  loadAvg1: Type.Number({ minimum: 0 }),
});
export type SystemStats = Static<typeof SystemStats>;

export const LatencySummary = Type.Object({
  p50: Type.Number({ minimum: 0 }),
  p90: Type.Number({ minimum: 0 }),
  p99: Type.Number({ minimum: 0 }),
});

/** Per-model inference counters since the agent started, latency percentiles over the last interval (ms). */
export const ModelStats = Type.Object({
  name: Type.String(),
  version: Type.String(),
  requests: Type.Integer({ minimum: 0 }),
  errors: Type.Integer({ minimum: 0 }),
  latencyMs: LatencySummary,
});
export type ModelStats = Static<typeof ModelStats>;

export const TelemetryMessage = Type.Object({
  ...EnvelopeFields,
  system: SystemStats,
  models: Type.Array(ModelStats),
});
export type TelemetryMessage = Static<typeof TelemetryMessage>;
