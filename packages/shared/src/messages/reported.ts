import { Type, type Static } from 'typebox';
import { SeqNumber, TimestampMs } from '../envelope.js';
import { CLOSED, Megabytes, Name, ShortText } from './bounds.js';

/** Short lists of short strings: a device's whole `reported` stays a few KB, so the fleet list stays small. */
const Tags = (maxItems: number) => Type.Array(Type.String({ maxLength: 64 }), { maxItems });

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
