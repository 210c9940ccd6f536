import { describe, expect, it } from 'vitest';
import { encodeMessage, LONG_TEXT_MAX } from '@edgefleet/shared';
import { blocks } from '../src/deployment/retry-policy.js';
import { failureOf } from '../src/deployment/step-context.js';
import type { FailureRow } from '../src/store/agent-store.js';
import { desired as doc, plainAssignment, sha } from './support/plain-assignments.js';

describe('deployment failures', () => {
  it('cut a long error message to what the events schema accepts, so the failure is still reported', () => {
    const failure = failureOf(new Error(`onnxruntime: ${'node failed; '.repeat(1000)}`));
    expect(failure.message.length).toBeLessThanOrEqual(LONG_TEXT_MAX);
    expect(failure.message.startsWith('onnxruntime: node failed;')).toBe(true);
    const event = { v: 1 as const, seq: 1, ts: Date.now(), type: 'deployment' as const, model: 'm', version: '1', sha256: 'a'.repeat(64), phase: 'failed' as const, code: failure.code, message: failure.message };
    expect(() => encodeMessage('events', event)).not.toThrow();
  });
});

describe('when a failed assignment is tried again (pure)', () => {
  /** Every assignment here is of version 2: only the model, digest and rollout vary. */
  const assignment = (model: string, digest: string, rolloutId?: string) => plainAssignment(model, '2', digest, rolloutId);
  const failure = (extra: Partial<FailureRow>): FailureRow => ({
    name: 'm',
    sha256: sha('a'),
    version: '2',
    desiredVersion: 5,
    code: 'UNHEALTHY',
    message: 'health window',
    retryable: false,
    attempts: 1,
    failedAt: 1000,
    ...extra,
  });
  const notDue = 2000;
  const due = 500;

  it('a non-retryable failure in a rollout blocks that assignment under any later document, not another rollout of the digest', () => {
    const f = failure({ rolloutId: 'r1' });
    expect(blocks(f, doc(5, assignment('m', sha('a'), 'r1')), 1500, due)).toBe(true);
    // Another model's rollout wrote documents 6 and 9; this assignment is unchanged.
    expect(blocks(f, doc(6, assignment('m', sha('a'), 'r1'), assignment('n', sha('b'), 'r7')), 1500, due)).toBe(true);
    expect(blocks(f, doc(9, assignment('n', sha('b'), 'r8'), assignment('m', sha('a'), 'r1')), 1500, due)).toBe(true);
    expect(blocks(f, doc(6, assignment('m', sha('a'), 'r2')), 1500, due)).toBe(false);
    expect(blocks(f, doc(6, assignment('m', sha('a'))), 1500, due)).toBe(false);
    expect(blocks(f, doc(6, assignment('m', sha('c'), 'r1')), 1500, due)).toBe(false);
  });

  it('outside a rollout (or a row from before rollout ids were kept) only the document it failed under is blocked', () => {
    const f = failure({ code: 'INVALID_MODEL' });
    expect(blocks(f, doc(5, assignment('m', sha('a'))), 1500, due)).toBe(true);
    expect(blocks(f, doc(6, assignment('m', sha('a'))), 1500, due)).toBe(false);
    expect(blocks(f, doc(6, assignment('m', sha('a'), 'r1')), 1500, due)).toBe(false);
  });

  it('a retryable failure waits for its delay under its document, and a new document tries at once', () => {
    const f = failure({ code: 'UNAVAILABLE', retryable: true, rolloutId: 'r1' });
    expect(blocks(f, doc(5, assignment('m', sha('a'), 'r1')), 1500, notDue)).toBe(true);
    expect(blocks(f, doc(5, assignment('m', sha('a'), 'r1')), 1500, due)).toBe(false);
    expect(blocks(f, doc(6, assignment('m', sha('a'), 'r1')), 1500, notDue)).toBe(false);
  });
});
