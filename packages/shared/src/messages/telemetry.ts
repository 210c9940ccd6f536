import { Type, type Static } from 'typebox';
import { EnvelopeFields } from '../envelope.js';
import { ThermalZones } from './reported.js';
import { CLOSED, Counter, LatencyMs, Megabytes, Name, Percent } from './bounds.js';

export const SystemStats = Type.Object(
  {
    cpuPercent: Percent,
    memUsedMb: Megabytes,
    memTotalMb: Megabytes,
    /** °C; a sensor reading outside -273..1000 is a broken sensor, not a temperature. */
    temperatureC: Type.Union([Type.Number({ minimum: -273.15, maximum: 1000 }), Type.Null()]),
    diskUsedPercent: Type.Union([Percent, Type.Null()]),
    agentRssMb: Megabytes,
    loadAvg1: Type.Number({ minimum: 0, maximum: 1e6 }),
    /** Jetson GPU busy share from sysfs (absent where there is none; agents before issue 18 never send it). */
    gpuLoadPercent: Type.Optional(Percent),
    /** Every named thermal zone (temperatureC is the hottest of them), absent where sysfs has none. */
    thermalZones: Type.Optional(ThermalZones),
  },
  CLOSED,
);
export type SystemStats = Static<typeof SystemStats>;

export const LatencySummary = Type.Object(
  {
    p50: LatencyMs,
    p90: LatencyMs,
    p99: LatencyMs,
  },
  CLOSED,
);

/** Per-model inference counters since the agent started, latency percentiles over the last interval (ms). */
export const ModelStats = Type.Object(
  {
    name: Name,
    version: Name,
    requests: Counter,
    errors: Counter,
    latencyMs: LatencySummary,
  },
  CLOSED,
);
export type ModelStats = Static<typeof ModelStats>;

/** At most this many models per telemetry record (an agent serves a handful). */
export const MAX_MODELS_PER_DEVICE = 64;

export const TelemetryMessage = Type.Object(
  {
    ...EnvelopeFields,
    system: SystemStats,
    models: Type.Array(ModelStats, { maxItems: MAX_MODELS_PER_DEVICE }),
  },
  CLOSED,
);
export type TelemetryMessage = Static<typeof TelemetryMessage>;
