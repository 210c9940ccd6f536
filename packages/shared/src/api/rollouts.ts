import { Type, type Static } from 'typebox';
import { DEPLOYMENT_PHASES } from '../messages/events.js';
import { Labels } from './common.js';

export const RolloutTarget = Type.Union([
  Type.Object({ all: Type.Literal(true) }),
  Type.Object({ labels: Labels }),
  Type.Object({ deviceIds: Type.Array(Type.String(), { minItems: 1 }) }),
]);
export type RolloutTarget = Static<typeof RolloutTarget>;

export const CreateRolloutRequest = Type.Object({
  model: Type.String({ minLength: 1 }),
  version: Type.String({ minLength: 1 }),
  target: RolloutTarget,
});
export type CreateRolloutRequest = Static<typeof CreateRolloutRequest>;

export const ROLLOUT_DEVICE_STATES = ['pending', ...DEPLOYMENT_PHASES] as const;
export type RolloutDeviceState = (typeof ROLLOUT_DEVICE_STATES)[number];

export const RolloutDevice = Type.Object({
  deviceId: Type.String(),
  state: Type.Enum(ROLLOUT_DEVICE_STATES),
  progress: Type.Union([Type.Number(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  updatedAt: Type.String(),
});
export type RolloutDevice = Static<typeof RolloutDevice>;

export const ROLLOUT_STATES = ['in-progress', 'succeeded', 'failed'] as const;

export const Rollout = Type.Object({
  id: Type.String(),
  model: Type.String(),
  version: Type.String(),
  target: RolloutTarget,
  state: Type.Enum(ROLLOUT_STATES),
  createdAt: Type.String(),
  waves: Type.Array(
    Type.Object({
      index: Type.Integer(),
      devices: Type.Array(RolloutDevice),
    }),
  ),
  counts: Type.Record(Type.String(), Type.Integer()),
});
export type Rollout = Static<typeof Rollout>;
