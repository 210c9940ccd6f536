import { Type, type Static } from 'typebox';
import { SeqNumber, TimestampMs } from '../envelope.js';
import { CLOSED, Megabytes, Name, Percent, ShortText } from './bounds.js';

/** Short lists of short strings: a device's whole `reported` stays a few KB, so the fleet list stays small. */
const Tags = (maxItems: number) => Type.Array(Type.String({ maxLength: 64 }), { maxItems });

/** A thermal zone's `type` (sysfs) and its reading in °C; a repeated type carries its zone, "type (thermal_zoneN)". */
export const ThermalZone = Type.Object({ name: Type.String({ maxLength: 80 }), celsius: Type.Number({ minimum: -273.15, maximum: 1000 }) }, CLOSED);
export type ThermalZone = Static<typeof ThermalZone>;
/** Boards list a dozen zones at most; 64 leaves room. */
export const ThermalZones = Type.Array(ThermalZone, { maxItems: 64 });

/** An execution provider that could not open a session, and onnxruntime's message saying why (cut to 512 characters). */
export const ProviderFallback = Type.Object({ provider: Type.String({ maxLength: 64 }), reason: Type.String({ maxLength: 512 }) }, CLOSED);
export type ProviderFallback = Static<typeof ProviderFallback>;

export const Capabilities = Type.Object(
  {
    arch: Type.String({ maxLength: 32 }),
    platform: Type.String({ maxLength: 32 }),
    cores: Type.Integer({ minimum: 1, maximum: 4096 }),
    memoryMb: Megabytes,
    cpuModel: ShortText,
    /** x86 CPUs list about 150 flags; 512 leaves room without letting the list grow without bound. */
    cpuFlags: Tags(512),
    executionProviders: Tags(32),
    accelerators: Tags(32),
    agentVersion: Type.String({ maxLength: 64 }),
    // Optional from here on: agents before issue 18 do not send them and still validate.
    /** The board from the device tree (`/proc/device-tree/model`), e.g. "Raspberry Pi 4 Model B Rev 1.4". */
    board: Type.Optional(ShortText),
    /** NVIDIA L4T release from `/etc/nv_tegra_release` (Jetson only), e.g. "35.4.1". */
    l4tRelease: Type.Optional(Type.String({ maxLength: 32 })),
    /** Jetson GPU busy share when the capabilities were gathered (the periodic value goes with telemetry). */
    gpuLoadPercent: Type.Optional(Percent),
    thermalZones: Type.Optional(ThermalZones),
    /**
     * Providers a session of this agent has actually opened with, in the order first seen; absent
     * until the first model loads. `executionProviders` is what onnxruntime ships (or what was declared).
     */
    usableExecutionProviders: Type.Optional(Tags(8)),
    /** Providers that failed at session creation and why (onnxruntime's message), e.g. cuda without its libraries. */
    providerFallbacks: Type.Optional(Type.Array(ProviderFallback, { maxItems: 8 })),
  },
  CLOSED,
);
export type Capabilities = Static<typeof Capabilities>;

export const InstalledModel = Type.Object(
  {
    name: Name,
    version: Name,
    sha256: Name,
    profile: Type.String({ maxLength: 64 }),
    active: Type.Boolean(),
  },
  CLOSED,
);
export type InstalledModel = Static<typeof InstalledModel>;

/** Installed model versions a device may report (several versions of a few models). */
export const MAX_INSTALLED_MODELS = 256;

/** Retained device state: what it can do and what it runs; last one wins. */
export const ReportedMessage = Type.Object(
  {
    capabilities: Capabilities,
    models: Type.Array(InstalledModel, { maxItems: MAX_INSTALLED_MODELS }),
    /** The desired-state version the agent last finished reconciling (0 before the first). */
    desiredVersion: SeqNumber,
    ts: TimestampMs,
  },
  CLOSED,
);
export type ReportedMessage = Static<typeof ReportedMessage>;
