import { join } from 'node:path';
import { connect } from 'mqtt';
import { Compile } from 'typebox/compile';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BENCHMARK_VERB,
  BenchmarkResult,
  CmdMessage as CmdMessageSchema,
  MAX_CMD_ID_LENGTH,
  decodeMessage,
  deviceTopic,
  encodeMessage,
  generateSigningKeyPair,
  signManifest,
  type CmdMessage,
  type CmdResultMessage,
} from '@edgefleet/shared';
import { buildMlp } from '@edgefleet/shared/onnx';
import { benchmarkCommand } from '../src/benchmark/benchmark-command.js';
import { createBenchmarkRunner } from '../src/benchmark/benchmark-runner.js';
import { createCommandDispatcher, type CommandOutcome } from '../src/commands/command-table.js';
import type { HubLink } from '../src/hub-link/hub-link.js';
import { createModelRuntime } from '../src/inference/model-runtime.js';
import { createDownloader } from '../src/models/download.js';
import { createAgentStore } from '../src/store/agent-store.js';
import { startArtifactServer } from './support/artifact-server.js';
import { startBroker } from './support/broker.js';
import { createTestHubLink } from './support/hub-link-rig.js';
import { assignmentFor, sha256Of } from './support/manifests.js';
import { eventually, silentLogger, tempDir } from './support/temp.js';

const deviceId = 'dev-bench-cmd';
const creds = { username: deviceId, password: 'pw-cmd' };

describe('the cmd topic: verbs dispatched, answers through the outbox', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  let publishCmd: (cmd: CmdMessage) => Promise<unknown>;
  const results: CmdResultMessage[] = [];
  let signed: ReturnType<typeof signManifest>;

  beforeAll(async () => {
    const keys = generateSigningKeyPair();
    const state = await tempDir('bench-cmd');
    cleanup.push(() => state.remove());
    const server = await startArtifactServer(creds);
    cleanup.push(() => server.close());
    const bytes = buildMlp({ inputSize: 8, hidden: [16], outputSize: 3, seed: 5 });
    server.files.set(sha256Of(bytes), bytes);
    const runtime = createModelRuntime({ workers: 1, threads: 1, logger: silentLogger });
    cleanup.push(() => runtime.stop());
    const assignment = await assignmentFor({ name: 'net', version: '2', bytes, privateKeyPem: keys.privateKeyPem, runtime, scratchDir: state.path });
    signed = signManifest({ ...assignment.manifest.manifest, profile: 'int8-static' }, keys.privateKeyPem);

    const broker = await startBroker(creds);
    cleanup.push(() => broker.close());
    const store = createAgentStore({ path: join(state.path, 'agent.db'), logger: silentLogger });
    store.start();
    cleanup.push(async () => store.stop());

    // Wired as agent.ts wires it: one downloader, the dispatcher publishing through the link's outbox.
    const benchmarks = createBenchmarkRunner({
      stateDir: state.path,
      apiUrl: server.apiUrl,
      auth: creds,
      hubPublicKey: keys.publicKeyPem,
      download: createDownloader({ logger: silentLogger, retries: 0 }),
      threads: runtime.threads,
      logger: silentLogger,
    });
    // Assigned below, as in agent.ts: the dispatcher publishes through the link once it exists.
    let link: HubLink | undefined;
    const commands = createCommandDispatcher({
      handlers: { [BENCHMARK_VERB]: benchmarkCommand(benchmarks) },
      publish: (body) => link?.publishRecord('cmd/result', body),
      logger: silentLogger,
    });
    link = createTestHubLink({ brokerUrl: broker.url, deviceId, secret: creds.password, outbox: store.outbox() }, { onCmd: (cmd) => commands.handle(cmd) });
    const started = link;
    started.start();
    cleanup.push(async () => {
      await benchmarks.stop();
      await commands.stop();
      await started.stop();
    });
    await started.connected();

    // The hub's side of the wire: publishes cmd, reads cmd/result.
    const hub = connect(broker.url, { protocolVersion: 4, clientId: 'hub-side', username: creds.username, password: creds.password });
    cleanup.push(() => hub.endAsync(true));
    hub.on('message', (_topic, payload) => {
      const decoded = decodeMessage('cmd/result', payload);
      if (!decoded.ok) throw new Error(decoded.error);
      results.push(decoded.value);
    });
    await hub.subscribeAsync(deviceTopic(deviceId, 'cmd/result'), { qos: 1 });
    publishCmd = (cmd) => hub.publishAsync(deviceTopic(deviceId, 'cmd'), encodeMessage('cmd', cmd), { qos: 1 });
  });

  const resultOf = (id: string) => eventually(() => results.find((r) => r.id === id), `cmd/result ${id}`);

  it('answers a benchmark with one cmd/result record carrying the BenchmarkResult', async () => {
    await publishCmd({ id: 'bench-1', verb: BENCHMARK_VERB, args: { model: 'net', version: '2', candidates: [signed], runs: 5, warmup: 1, expiresAt: Date.now() + 60_000 } });
    const answer = await resultOf('bench-1');
    expect(answer).toMatchObject({ v: 1, id: 'bench-1', ok: true, seq: expect.any(Number), epoch: expect.any(String), ts: expect.any(Number) });
    expect(Compile(BenchmarkResult).Check(answer.result)).toBe(true);
    expect(answer.result).toMatchObject({
      model: 'net',
      version: '2',
      threads: 1,
      measurements: [{ profile: 'int8-static', sha256: signed.manifest.sha256, ok: true, runs: 5 }],
    });
  });

  it('answers unknown verbs and bad args with ok false naming the problem', async () => {
    await publishCmd({ id: 'c-unknown', verb: 'capture-samples' });
    expect(await resultOf('c-unknown')).toMatchObject({ ok: false, error: 'unknown verb "capture-samples": this agent knows "benchmark"' });
    await publishCmd({ id: 'c-bad', verb: BENCHMARK_VERB, args: { model: 'net', version: '2', candidates: [signed] } });
    expect(await resultOf('c-bad')).toMatchObject({ ok: false, error: expect.stringMatching(/^benchmark args do not match the schema: .*expiresAt/) });
  });
});

describe('command dispatcher', () => {
  it('runs a redelivered command id once and turns a thrown error into ok false', async () => {
    const published: Array<{ id: string; ok: boolean; error?: string }> = [];
    let calls = 0;
    let release: (o: CommandOutcome) => void = () => undefined;
    const dispatcher = createCommandDispatcher({
      handlers: {
        slow: () => {
          calls++;
          return new Promise<CommandOutcome>((resolve) => (release = resolve));
        },
        broken: () => Promise.reject(new Error('the probe fell over')),
      },
      publish: (body) => published.push(body),
      logger: silentLogger,
    });
    dispatcher.handle({ id: 'a', verb: 'slow' });
    dispatcher.handle({ id: 'a', verb: 'slow' });
    dispatcher.handle({ id: 'b', verb: 'broken' });
    release({ ok: true, result: { done: 1 } });
    await dispatcher.stop();
    dispatcher.handle({ id: 'a', verb: 'slow' });
    await dispatcher.stop();
    expect(calls).toBe(1);
    expect(published).toHaveLength(2);
    expect(published).toEqual(
      expect.arrayContaining([
        { id: 'b', ok: false, error: 'the probe fell over' },
        { id: 'a', ok: true, result: { done: 1 } },
      ]),
    );
  });

  it('does not run a command whose id no answer could carry (longer than 128 characters)', async () => {
    const published: Array<{ id: string }> = [];
    let calls = 0;
    const dispatcher = createCommandDispatcher({
      handlers: { probe: () => (calls++, Promise.resolve({ ok: true, result: {} })) },
      publish: (body) => published.push(body),
      logger: silentLogger,
    });
    const longest = 'x'.repeat(MAX_CMD_ID_LENGTH);
    const tooLong = `${longest}y`;
    expect(Compile(CmdMessageSchema).Check({ id: tooLong, verb: 'probe' })).toBe(false);
    dispatcher.handle({ id: tooLong, verb: 'probe' });
    dispatcher.handle({ id: longest, verb: 'probe' });
    await dispatcher.stop();
    expect(calls).toBe(1);
    expect(published.map((p) => p.id)).toEqual([longest]);
  });
});
