import { describe, expect, it } from 'vitest';
import { encodeMessage, LONG_TEXT_MAX } from '@edgefleet/shared';
import { failureOf } from '../src/deployment/steps.js';

describe('deployment failures', () => {
  it('cut a long error message to what the events schema accepts, so the failure is still reported', () => {
    const failure = failureOf(new Error(`onnxruntime: ${'node failed; '.repeat(1000)}`));
    expect(failure.message.length).toBeLessThanOrEqual(LONG_TEXT_MAX);
    expect(failure.message.startsWith('onnxruntime: node failed;')).toBe(true);
    const event = { v: 1 as const, seq: 1, ts: Date.now(), type: 'deployment' as const, model: 'm', version: '1', sha256: 'a'.repeat(64), phase: 'failed' as const, code: failure.code, message: failure.message };
    expect(() => encodeMessage('events', event)).not.toThrow();
  });
});
