import { describe, expect, it } from 'vitest';
import type { ModelAssignment } from '@edgefleet/shared';
import { blockKey, reconcile, type CurrentModel } from '../src/deployment/reconcile.js';
import { desired, plainAssignment as assignment, sha } from './support/plain-assignments.js';

const none = new Set<string>();

describe('reconcile', () => {
  it('installs what is desired and not present', () => {
    const plan = reconcile({ current: [], desired: desired(1, assignment('a', '1', sha('a'), 'r1')), blocked: none });
    expect(plan.steps).toHaveLength(1);
    expect(plan.steps[0]).toMatchObject({ kind: 'install', name: 'a', version: '1', sha256: sha('a') });
    expect(plan.steps[0]!.kind === 'install' && plan.steps[0]!.assignment.rolloutId).toBe('r1');
  });

  it('does nothing when the desired version is already active', () => {
    const current: CurrentModel[] = [{ name: 'a', version: '1', sha256: sha('a'), active: true }];
    expect(reconcile({ current, desired: desired(2, assignment('a', '1', sha('a'))), blocked: none }).steps).toEqual([]);
  });

  it('installs a new version over the active one', () => {
    const current: CurrentModel[] = [{ name: 'a', version: '1', sha256: sha('a'), active: true }];
    const plan = reconcile({ current, desired: desired(2, assignment('a', '2', sha('b'))), blocked: none });
    expect(plan.steps.map((s) => [s.kind, s.name, s.version])).toEqual([['install', 'a', '2']]);
  });

  it('installs a model that is installed but not active (e.g. its file went bad at start)', () => {
    const current: CurrentModel[] = [{ name: 'a', version: '1', sha256: sha('a'), active: false }];
    const plan = reconcile({ current, desired: desired(1, assignment('a', '1', sha('a'))), blocked: none });
    expect(plan.steps.map((s) => s.kind)).toEqual(['install']);
  });

  it('removes active models that are no longer desired, before installing', () => {
    const current: CurrentModel[] = [
      { name: 'old', version: '3', sha256: sha('c'), active: true },
      { name: 'kept-file', version: '1', sha256: sha('d'), active: false },
    ];
    const plan = reconcile({ current, desired: desired(5, assignment('new', '1', sha('e'))), blocked: none });
    expect(plan.steps.map((s) => `${s.kind} ${s.name}@${s.version}`)).toEqual(['remove old@3', 'install new@1']);
  });

  it('removes everything for an empty document', () => {
    const current: CurrentModel[] = [
      { name: 'a', version: '1', sha256: sha('a'), active: true },
      { name: 'b', version: '1', sha256: sha('b'), active: true },
    ];
    expect(reconcile({ current, desired: desired(9), blocked: none }).steps.map((s) => s.kind)).toEqual(['remove', 'remove']);
  });

  it('skips blocked assignments and reports them', () => {
    const current: CurrentModel[] = [{ name: 'a', version: '1', sha256: sha('a'), active: true }];
    const plan = reconcile({
      current,
      desired: desired(2, assignment('a', '2', sha('b')), assignment('c', '1', sha('c'))),
      blocked: new Set([blockKey('a', sha('b'))]),
    });
    expect(plan.steps.map((s) => s.name)).toEqual(['c']);
    expect(plan.skipped).toEqual([{ name: 'a', version: '2', sha256: sha('b') }]);
  });

  it('keeps the first assignment of a duplicated model name', () => {
    const plan = reconcile({ current: [], desired: desired(1, assignment('a', '1', sha('a')), assignment('a', '2', sha('b'))), blocked: none });
    expect(plan.steps.map((s) => s.version)).toEqual(['1']);
    expect(plan.duplicates).toEqual(['a']);
  });

  it('keeps document order for installs', () => {
    const plan = reconcile({ current: [], desired: desired(1, assignment('z', '1', sha('a')), assignment('b', '1', sha('b'))), blocked: none });
    expect(plan.steps.map((s) => s.name)).toEqual(['z', 'b']);
  });
});

describe('reconcile: prepare, staged and standby candidates', () => {
  const prepareOnly = (a: ModelAssignment): ModelAssignment => ({ ...a, activate: false });
  const v1: CurrentModel = { name: 'a', version: '1', sha256: sha('a'), active: true };
  const v2Kept: CurrentModel = { name: 'a', version: '2', sha256: sha('b'), active: false };
  const describeSteps = (plan: ReturnType<typeof reconcile>) =>
    plan.steps.map((s) => (s.kind === 'install' ? `install ${s.name}@${s.version} ${s.source}${s.activate ? '' : ' prepare'}` : `${s.kind} ${s.name}`));

  it('prepares without activating when the assignment says activate: false', () => {
    const plan = reconcile({ current: [v1], desired: desired(2, prepareOnly(assignment('a', '2', sha('b')))), blocked: none });
    expect(describeSteps(plan)).toEqual(['install a@2 download prepare']);
  });

  it('does nothing more for a prepare-only assignment already staged', () => {
    const plan = reconcile({
      current: [v1, v2Kept],
      desired: desired(3, prepareOnly(assignment('a', '2', sha('b')))),
      blocked: none,
      loaded: [{ name: 'a', version: 'x', sha256: sha('b'), role: 'staged' }],
    });
    expect(plan.steps).toEqual([]);
  });

  it('reports ready for a prepare-only assignment staged by an interrupted switch (no ready went out for it)', () => {
    const plan = reconcile({
      current: [v1, v2Kept],
      desired: desired(3, prepareOnly(assignment('a', '2', sha('b')))),
      blocked: none,
      loaded: [{ name: 'a', version: 'x', sha256: sha('b'), role: 'staged', readyReported: false }],
    });
    expect(describeSteps(plan)).toEqual(['install a@2 staged prepare']);
  });

  it('switches to the staged candidate when the go comes', () => {
    const plan = reconcile({
      current: [v1, v2Kept],
      desired: desired(3, assignment('a', '2', sha('b'))),
      blocked: none,
      loaded: [{ name: 'a', version: 'x', sha256: sha('b'), role: 'staged' }],
    });
    expect(describeSteps(plan)).toEqual(['install a@2 staged']);
  });

  it('loads a prepared version from disk after a restart (nothing staged), never downloading it', () => {
    const plan = reconcile({ current: [v1, v2Kept], desired: desired(3, assignment('a', '2', sha('b'))), blocked: none, loaded: [] });
    expect(describeSteps(plan)).toEqual(['install a@2 disk']);
  });

  it('goes back to the previous version by a switch when it is standby, else from disk', () => {
    const current: CurrentModel[] = [{ ...v1, active: false }, { ...v2Kept, active: true }];
    const back = desired(4, assignment('a', '1', sha('a')));
    expect(describeSteps(reconcile({ current, desired: back, blocked: none, loaded: [{ name: 'a', version: 'x', sha256: sha('a'), role: 'standby' }] }))).toEqual(['install a@1 standby']);
    expect(describeSteps(reconcile({ current, desired: back, blocked: none }))).toEqual(['install a@1 disk']);
  });

  it('discards a staged candidate the document no longer wants, or whose version is already active', () => {
    const other = reconcile({
      current: [v1, v2Kept],
      desired: desired(5, assignment('a', '3', sha('c'))),
      blocked: none,
      loaded: [{ name: 'a', version: 'x', sha256: sha('b'), role: 'staged' }],
    });
    expect(describeSteps(other)).toEqual(['discard a', 'install a@3 download']);
    const rolledBack = reconcile({
      current: [v1, v2Kept],
      desired: desired(5, assignment('a', '1', sha('a'))),
      blocked: none,
      loaded: [{ name: 'a', version: 'x', sha256: sha('b'), role: 'staged' }],
    });
    expect(describeSteps(rolledBack)).toEqual(['discard a']);
  });

  it('leaves a standby alone when the document does not want it', () => {
    const plan = reconcile({ current: [v1], desired: desired(6, assignment('a', '1', sha('a'))), blocked: none, loaded: [{ name: 'a', version: 'x', sha256: sha('z'), role: 'standby' }] });
    expect(plan.steps).toEqual([]);
  });
});
