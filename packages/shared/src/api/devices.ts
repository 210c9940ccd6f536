import { Type, type Static } from 'typebox';
import { InstalledModel, Capabilities } from '../messages/reported.js';
import { SystemStats, ModelStats } from '../messages/telemetry.js';
import { Labels } from './common.js';

export const Device = Type.Object({
  id: Type.String(),
  name: Type.String(),
  labels: Labels,
  online: Type.Boolean(),
  revoked: Type.Boolean(),
  enrolledAt: Type.String(),
  lastSeen: Type.Union([Type.String(), Type.Null()]),
  capabilities: Type.Union([Capabilities, Type.Null()]),
  models: Type.Array(InstalledModel),
  desiredVersion: Type.Integer(),
  reportedVersion: Type.Integer(),
  telemetry: Type.Union([
    Type.Object({ ts: Type.String(), system: SystemStats, models: Type.Array(ModelStats) }),
    Type.Null(),
  ]),
  /**
   * Present when stored state of this device cannot be shown (a record from before a bound existed,
   * a damaged row): names each problem; the parts it concerns are left empty.
   */
  error: Type.Optional(Type.String()),
});
export type Device = Static<typeof Device>;

export const DeviceList = Type.Object({ devices: Type.Array(Device) });

export const TelemetryPoint = Type.Object({ seq: Type.Integer(), ts: Type.String(), system: SystemStats, models: Type.Array(ModelStats) });
export const TelemetryHistory = Type.Object({ deviceId: Type.String(), points: Type.Array(TelemetryPoint) });

export const SetLabelsRequest = Type.Object({ labels: Labels });

/** Revoke and restore take no parameters: a JSON `{}` body or none (Fastify sees none as null), never a form or text. */
export const DeviceActionRequest = Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()]);
