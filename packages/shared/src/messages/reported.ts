import { Type, type Static } from 'typebox';

export const Capabilities = Type.Object({
  arch: Type.String(),
  platform: Type.String(),
  cores: Type.Integer({ minimum: 1 }),
  memoryMb: Type.Number({ minimum: 0 }),
  cpuModel: Type.String(),
  cpuFlags: Type.Array(Type.String()),
  executionProviders: Type.Array(Type.String()),
  accelerators: Type.Array(Type.String()),
  agentVersion: Type.String(),
});
export type Capabilities = Static<typeof Capabilities>;

export const InstalledModel = Type.Object({
  name: Type.String(),
  version: Type.String(),
  sha256: Type.String(),
  profile: Type.String(),
  active: Type.Boolean(),
});
export type InstalledModel = Static<typeof InstalledModel>;

/** Retained device state: what it can do and what it runs; last one wins. */
export const ReportedMessage = Type.Object({
  capabilities: Capabilities,
  models: Type.Array(InstalledModel),
  /** The desired-state version the agent last finished reconciling (0 before the first). */
  desiredVersion: Type.Integer({ minimum: 0 }),
  ts: Type.Number(),
});
export type ReportedMessage = Static<typeof ReportedMessage>;
