import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevicePlan, ModelVersion, Rollout, VariantDetail, VariantList } from '@edgefleet/shared';
import { fixtureModelUrl } from './fixtures/onnx/fixture-data.mjs';
import {
  artifactDownloads,
  benchmarksOf,
  binaryCalibration,
  describeVariants,
  inferFixture,
  planOf,
  putCalibration,
  reportedActiveModel,
  waitForBuild,
} from './support/compression-fleet.js';
import { api, enrollAgent, eventually, makeTempDir, startAgent, startHub, type AgentHandle, type Hub } from './support/fleet.js';
import { killAll } from './support/processes.js';
import { describeRollout, waitForState } from './support/rollout-fleet.js';

const MODEL = 'cnn';
const VERSION = '1';
const CNN = new Uint8Array(readFileSync(fixtureModelUrl('torch-cnn')));
/** Every profile the hub builds. */
const PROFILES = ['fp16', 'int8-dynamic', 'int8-static', 'int8-weights', 'pruned'] as const;
/**
 * At 0.15 the pruned variant of this CNN keeps 0.99 agreement on its 200 held-out samples and its
 * zstd copy is 0.88x of the file (served: it saves ≥ 10 %); 0.2 measured 0.99 too, 0.3 0.98 (the
 * fixture as fitted to 0.95 accuracy; the earlier one fitted to 0.51 fell to 0.935 at 0.2). All are
 * deterministic (magnitude pruning, fixed data, zstd level 19).
 */
const PRUNE_SPARSITY = 0.15;
/** 200 samples calibrate and 200 are held out for evaluation (the hub splits them in half). */
const CALIBRATION_SAMPLES = 400;
/**
 * The budget, given at upload. This test is about deployment, not transform fidelity (the hub's
 * unit tests hold int8-static to 0.995 top-1 agreement on 1,000 held-out samples): on 200 held-out
 * samples one disagreement is 0.5 %, so the default 0.99 would make the accepted set here depend
 * on two samples near a class boundary. 0.97 still rejects a broken variant.
 */
const MIN_AGREEMENT = 0.97;
/** The planner's rules (packages/hub/src/compression/planner.ts), restated for the expectations. */
const MAX_INT8_HUB_RATIO = 0.9;
const MEASURED_MARGIN = 0.05;

const variantsPath = `/api/v1/models/${MODEL}/versions/${VERSION}/variants`;

/**
 * Acceptance 4 of issue 16, with a real hub, two real agents and real onnxruntime: the hub builds the
 * variants of a PyTorch conv net from uploaded calibration data; agent A (this x86_64 CPU, AVX512-VNNI)
 * and agent B (the same CPU declaring an NVIDIA GPU) are planned different variants by rule and each
 * gets its own in one rollout; B's benchmark on itself replaces the rule with measurements; and a
 * rollout pinned to the pruned variant reaches A as its zstd transfer copy, unpacked and verified.
 */
describe('compression variants end to end', () => {
  let hub: Hub;
  let a: AgentHandle;
  let b: AgentHandle;
  let variants: VariantList;
  /** B's plan before it benchmarked, decided by rule. */
  let rulePlanB: DevicePlan;
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  const accepted = (profile: string) => variants.variants.find((v) => v.profile === profile && v.state === 'accepted');

  beforeAll(async () => {
    const hubDir = await makeTempDir('compress-hub');
    dirs.push(hubDir);
    // Debug level for Fastify's access log: which artifacts the hub served is the evidence of step 4.
    hub = await startHub({ dataDir: hubDir.path, env: { EDGEFLEET_LOG_LEVEL: 'debug' } });
    const start = async (name: string, env: Record<string, string>) => {
      const dir = await makeTempDir(`compress-${name}`);
      dirs.push(dir);
      return startAgent(dir.path, await enrollAgent(hub, dir.path, name), env);
    };
    [a, b] = await Promise.all([
      // A reports what it probes: x86_64, this CPU's flags with avx512_vnni, onnxruntime-node's
      // bundled providers (cpu and webgpu, which says nothing about a GPU).
      start('cpu-box', {}),
      // B declares a GPU: the planner's class gets "+gpu". Its sessions still run on the CPU.
      start('gpu-box', { EDGEFLEET_ACCELERATORS: 'nvidia-gpu', EDGEFLEET_EXECUTION_PROVIDERS: 'cuda,cpu' }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await killAll();
    await Promise.all(dirs.map((d) => d.remove()));
  });

  it('builds the variants from calibration data and accepts them within the budget', async () => {
    const uploaded = await api<ModelVersion>(hub, 'POST', `/api/v1/models/${MODEL}/versions?version=${VERSION}&minAgreement=${MIN_AGREEMENT}`, CNN, 201);
    expect(uploaded.budget).toEqual({ minAgreement: MIN_AGREEMENT });
    const summary = await putCalibration(hub, MODEL, VERSION, binaryCalibration('torch-cnn', CALIBRATION_SAMPLES, 11));
    expect(summary).toMatchObject({ samples: CALIBRATION_SAMPLES, labels: true, inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 32, 32] }] });

    const build = await api<VariantList['build']>(hub, 'POST', variantsPath, { profiles: [...PROFILES], pruneSparsity: PRUNE_SPARSITY }, 202);
    expect(build).toMatchObject({ state: expect.stringMatching(/queued|running/), pruneSparsity: PRUNE_SPARSITY, budget: { minAgreement: MIN_AGREEMENT } });
    variants = await waitForBuild(hub, MODEL, VERSION, 60_000);
    const why = describeVariants(variants);
    expect(variants.build, why).toMatchObject({ state: 'done', progress: { done: PROFILES.length, total: PROFILES.length } });
    // Every profile this test deploys is accepted; each built one was judged on the uploaded, labelled data.
    for (const profile of ['fp32', 'fp16', 'int8-static', 'pruned']) expect(accepted(profile), `${profile} accepted?\n${why}`).toBeDefined();
    for (const v of variants.variants.filter((x) => x.profile !== 'fp32')) {
      expect(['accepted', 'rejected'], why).toContain(v.state);
      expect(v.evaluation, why).toMatchObject({ data: 'calibration', samples: CALIBRATION_SAMPLES / 2, accuracy: expect.any(Number) });
      if (v.state === 'accepted') expect(v.evaluation!.agreement!, why).toBeGreaterThanOrEqual(MIN_AGREEMENT);
    }
    console.info(`[compression e2e] variants of ${MODEL}@${VERSION}:\n${why}`);
  }, 90_000);

  it('plans different variants for A and B by rule, and one rollout gives each its own', async () => {
    const planA = await eventually(async () => {
      const p = await planOf(hub, a.deviceId, MODEL, VERSION);
      return p?.deviceClass !== 'unknown' && p;
    }, `a plan for ${a.deviceId} from its reported capabilities`);
    const planB = await eventually(async () => {
      const p = await planOf(hub, b.deviceId, MODEL, VERSION);
      return p?.deviceClass !== 'unknown' && p;
    }, `a plan for ${b.deviceId} from its reported capabilities`);
    const why = `A: ${JSON.stringify(planA)}\nB: ${JSON.stringify(planB)}\n${describeVariants(variants)}`;
    expect(planA.deviceClass, why).toBe('x86_64 avx512-vnni');
    expect(planB.deviceClass, why).toBe('x86_64 avx512-vnni+gpu');
    expect(planA.decidedBy, why).toBe('rule');
    expect(planB.decidedBy, why).toBe('rule');
    // B: a GPU class gets fp16 by rule.
    expect(planB.profile, why).toBe('fp16');
    expect(planB.reason, why).toMatch(/GPU/);
    // A: the int8 variant the hub measured fastest, when it measured int8 paying (≤ 0.9x fp32); fp32 otherwise.
    expect(planA.profile, why).toBe(expectedRulePlanForCpu());
    expect(planA.reason, why).toMatch(planA.profile === 'fp32' ? /no variant is expected to run faster/ : /int8 dot products/);
    expect(planA.profile).not.toBe(planB.profile);
    rulePlanB = planB;
    for (const plan of [planA, planB]) {
      expect(plan.candidates.map((c) => c.profile).sort(), why).toEqual(variants.variants.filter((v) => v.state === 'accepted').map((v) => v.profile).sort());
      for (const c of plan.candidates) expect(c.note.length, why).toBeGreaterThan(0);
      expect(plan.sha256, why).toBe(accepted(plan.profile)!.sha256);
    }

    const rollout = await api<Rollout>(hub, 'POST', '/api/v1/rollouts', { model: MODEL, version: VERSION, target: { deviceIds: [a.deviceId, b.deviceId] }, waves: [{ size: '100%' }] }, 201);
    const done = await waitForState(hub, rollout.id, ['succeeded'], 60_000);
    for (const [agent, plan] of [[a, planA], [b, planB]] as const) {
      const row = done.waves[0]!.devices.find((d) => d.deviceId === agent.deviceId);
      expect(row?.to, describeRollout(done)).toEqual({ model: MODEL, version: VERSION, profile: plan.profile, sha256: plan.sha256 });
      await expectRunning(agent, plan.profile, plan.sha256);
    }
  }, 90_000);

  it('replaces B’s rule plan with its own benchmark: the lowest measured p50, unless within 5 % of fp32', async () => {
    const requested = await api<{ id: string; candidates: Array<{ profile: string; sha256: string }> }>(
      hub,
      'POST',
      `/api/v1/devices/${b.deviceId}/benchmarks`,
      { model: MODEL, version: VERSION },
      202,
    );
    const acceptedProfiles = variants.variants.filter((v) => v.state === 'accepted').map((v) => v.profile);
    expect(requested.candidates.map((c) => c.profile).sort()).toEqual([...acceptedProfiles].sort());

    const measured = await eventually(async () => {
      const rows = (await benchmarksOf(hub, b.deviceId)).filter((r) => r.model === MODEL && r.version === VERSION);
      return rows.length === requested.candidates.length && rows;
    }, `${b.deviceId}'s benchmark of ${MODEL}@${VERSION}`, 60_000);
    for (const m of measured) expect(m, JSON.stringify(measured)).toMatchObject({ error: null, p50Ms: expect.any(Number), runs: expect.any(Number) });
    const p50 = new Map(measured.map((m) => [m.profile, m.p50Ms!]));
    console.info(`[compression e2e] ${b.deviceId} measured p50 (ms): ${JSON.stringify(Object.fromEntries(p50))}`);

    const plan = await eventually(async () => {
      const p = await planOf(hub, b.deviceId, MODEL, VERSION);
      return p?.decidedBy === 'measurement' && p;
    }, `${b.deviceId}'s plan to be decided by its measurements`, 30_000);
    const why = `plan: ${JSON.stringify(plan)}\nmeasured: ${JSON.stringify(measured)}`;
    // The measured numbers are in the plan, as this device's own.
    for (const c of plan.candidates) expect(c, why).toMatchObject({ measuredP50Ms: p50.get(c.profile), measuredOn: 'device' });
    // The profile follows from the numbers by the planner's rule.
    const fp32Ms = p50.get('fp32')!;
    const [fastest, fastestMs] = [...p50].filter(([profile]) => profile !== 'fp32').sort((x, y) => x[1] - y[1])[0]!;
    const expected = fastestMs <= fp32Ms * (1 - MEASURED_MARGIN) ? fastest : 'fp32';
    expect(plan.profile, why).toBe(expected);
    expect(plan.sha256, why).toBe(accepted(expected)!.sha256);
    expect(plan.reason, why).toMatch(/measured on this device/);
    // The rule's GPU choice gave way to what B measured on its CPU. fp16 is not reliably slower than
    // fp32 on this CPU for so small a net (both ~0.27 ms), so the profile is asserted to change only
    // when the numbers say so.
    if (expected !== rulePlanB.profile) expect(plan.profile, why).not.toBe(rulePlanB.profile);
    console.info(`[compression e2e] ${b.deviceId}: rule plan ${rulePlanB.profile} -> measured plan ${plan.profile} (${plan.reason})`);

    // A rollout now gives B the variant its measurements chose.
    const rollout = await api<Rollout>(hub, 'POST', '/api/v1/rollouts', { model: MODEL, version: VERSION, target: { deviceIds: [b.deviceId] }, waves: [{ size: '100%' }] }, 201);
    const done = await waitForState(hub, rollout.id, ['succeeded'], 60_000);
    expect(done.waves[0]!.devices[0]!.to, describeRollout(done)).toEqual({ model: MODEL, version: VERSION, profile: plan.profile, sha256: plan.sha256 });
    await expectRunning(b, plan.profile, plan.sha256);
    // A is of another class: B's measurements do not decide its plan.
    expect((await planOf(hub, a.deviceId, MODEL, VERSION))?.decidedBy).toBe('rule');
  }, 90_000);

  it('sends the pruned variant to A as its zstd transfer copy, which A unpacks, verifies and serves', async () => {
    const pruned = await api<VariantDetail>(hub, 'GET', `${variantsPath}/pruned`);
    const manifest = pruned.manifest!.manifest;
    expect(manifest).toMatchObject({ profile: 'pruned', sha256: pruned.sha256, size: pruned.size });
    expect(manifest.transfer, JSON.stringify(manifest.transfer)).toMatchObject({ encoding: 'zstd' });
    const transfer = manifest.transfer!;
    expect(transfer.size).toBeLessThan(manifest.size);
    expect(transfer.sha256).not.toBe(manifest.sha256);
    console.info(`[compression e2e] pruned: file ${manifest.size} B, zstd transfer ${transfer.size} B (${(transfer.size / manifest.size).toFixed(2)}x); fp32 ${CNN.byteLength} B`);

    const fromLine = hub.proc.lines.length;
    const rollout = await api<Rollout>(hub, 'POST', '/api/v1/rollouts', { model: MODEL, version: VERSION, target: { deviceIds: [a.deviceId] }, waves: [{ size: '100%' }], profile: 'pruned' }, 201);
    const done = await waitForState(hub, rollout.id, ['succeeded'], 60_000);
    expect(done.waves[0]!.devices[0], describeRollout(done)).toMatchObject({ state: 'active', to: { profile: 'pruned', sha256: manifest.sha256 } });
    await expectRunning(a, 'pruned', manifest.sha256);

    // What travelled: the transfer copy, never the plain file (A had neither before this rollout).
    const served = artifactDownloads(hub.proc, fromLine);
    expect(served.filter((d) => d.sha256 === transfer.sha256 && (d.status === 200 || d.status === 206)), JSON.stringify(served)).not.toHaveLength(0);
    expect(served.filter((d) => d.sha256 === manifest.sha256), JSON.stringify(served)).toEqual([]);
    // A pin does not change the stored plan: it still says what the planner chose for A.
    expect((await planOf(hub, a.deviceId, MODEL, VERSION))?.profile).toBe(expectedRulePlanForCpu());
  }, 90_000);

  /** The rule on a CPU with int8 dot products: the int8 variant with the lowest hub latency ratio, if it is ≤ 0.9x; else fp32. */
  function expectedRulePlanForCpu(): string {
    const int8 = variants.variants
      .filter((v) => v.state === 'accepted' && (v.profile === 'int8-static' || v.profile === 'int8-dynamic') && v.evaluation!.latencyRatio <= MAX_INT8_HUB_RATIO)
      .sort((x, y) => x.evaluation!.latencyRatio - y.evaluation!.latencyRatio)[0];
    return int8?.profile ?? 'fp32';
  }

  /** The device reports this variant active, and its socket serves the version. */
  async function expectRunning(agent: AgentHandle, profile: string, sha256: string): Promise<void> {
    await eventually(async () => {
      const m = await reportedActiveModel(hub, agent.deviceId, MODEL);
      return m?.sha256 === sha256 && m.profile === profile && m.version === VERSION;
    }, `${agent.deviceId} reporting ${MODEL}@${VERSION} ${profile} (${sha256.slice(0, 12)}) active`);
    const answer = await inferFixture(agent, MODEL, 'torch-cnn', 5);
    expect(answer.version).toBe(VERSION);
    expect(answer.shape).toEqual([1, 10]);
    expect(answer.data.every(Number.isFinite)).toBe(true);
  }
});

