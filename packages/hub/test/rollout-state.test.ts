import { describe, expect, it } from 'vitest';
import type { ModelAssignment } from '@edgefleet/shared';
import { countStates, nextDesired, nextDeviceState, rolloutState } from '../src/rollouts/rollout-state.js';

const assignment = (model: string, version: string): ModelAssignment =>
  ({ manifest: { manifest: { model, version }, signature: 'x' } }) as unknown as ModelAssignment;

describe('rollout state (pure)', () => {
  it('moves device state forward only; finished rows stay finished', () => {
    expect(nextDeviceState('pending', 'downloading')).toBe('downloading');
    expect(nextDeviceState('loading', 'downloading')).toBe('loading');
    expect(nextDeviceState('loading', 'failed')).toBe('failed');
    expect(nextDeviceState('failed', 'loading')).toBe('failed');
    expect(nextDeviceState('active', 'downloading')).toBe('active');
    expect(nextDeviceState('failed', 'active')).toBe('failed');
    expect(nextDeviceState('health-check', 'active')).toBe('active');
    expect(nextDeviceState('pending', 'active')).toBe('active');
    expect(nextDeviceState('pending', 'removed')).toBe('pending');
  });

  it('derives the rollout state from its devices', () => {
    expect(rolloutState(['active', 'active'])).toBe('succeeded');
    expect(rolloutState(['active', 'loading'])).toBe('in-progress');
    expect(rolloutState(['active', 'failed'])).toBe('failed');
    expect(rolloutState(['pending', 'failed'])).toBe('in-progress');
    expect(countStates(['active', 'active', 'failed'])).toEqual({ active: 2, failed: 1 });
  });

  it('bumps the desired version, replaces the same model and keeps the others', () => {
    const first = nextDesired(undefined, assignment('a', '1'));
    expect(first.version).toBe(1);
    const second = nextDesired(nextDesired(first, assignment('b', '1')), assignment('a', '2'));
    expect(second.version).toBe(3);
    expect(second.models.map((m) => `${m.manifest.manifest.model}@${m.manifest.manifest.version}`)).toEqual(['b@1', 'a@2']);
  });
});
