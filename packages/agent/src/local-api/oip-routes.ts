import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BINARY_HEADER, EdgefleetError, type ModelMetadata, type ServerMetadata } from '@edgefleet/shared';
import type { ShadowTap } from '../inference/shadow-registry.js';
import type { LoadedModel, ModelTable, Tensor } from '../inference/types.js';
import { ownsItsBuffer } from './body-buffer.js';
import { binaryBodyLimit, jsonBodyLimit, type BodyLimit, type BodyLimitSettings } from './body-limit.js';
import { encodeInferResponse, parseInferBody, planOutputs, requestTensors } from './infer-codec.js';
import type { InferenceMetrics } from './metrics.js';
import { setBodyLimit } from './request-body.js';

export interface OipRouteDeps {
  models: ModelTable;
  metrics: InferenceMetrics;
  serverName: string;
  serverVersion: string;
  bodyLimits: BodyLimitSettings;
  /** Shadow sessions that sample requests for a candidate version; none when absent. */
  shadow?: ShadowTap;
  /** Extensions listed in GET /v2 beyond binary_tensor_data (e.g. update locks, when served). */
  extensions?: readonly string[];
}

type ModelParams = { name: string; version?: string };

const isReady = (m: LoadedModel) => m.isReady?.() ?? true;

/** A copy with a buffer of its own: the runtime moves (detaches) the buffers of the tensors it is given. */
function copyTensor(t: Tensor): Tensor {
  return { name: t.name, datatype: t.datatype, shape: [...t.shape], data: t.data.slice() };
}

/** Open Inference Protocol routes (KServe v2 / Triton HTTP) over the active models of the table. */
export function registerOipRoutes(app: FastifyInstance, deps: OipRouteDeps): void {
  const { models, metrics } = deps;

  function resolve(params: ModelParams): LoadedModel {
    const model = models.get(params.name);
    if (!model) throw new EdgefleetError('MODEL_NOT_FOUND', `no model "${params.name}" is loaded; loaded: [${models.list().map((m) => m.name).join(', ')}]`);
    if (params.version !== undefined && params.version !== model.version) {
      throw new EdgefleetError('MODEL_NOT_FOUND', `model "${params.name}" version "${params.version}" is not loaded; the active version is "${model.version}"`);
    }
    return model;
  }

  function metadata(model: LoadedModel): ModelMetadata {
    return { name: model.name, versions: [model.version], platform: 'onnxruntime_onnx', inputs: model.inputs, outputs: model.outputs };
  }

  function ready(model: LoadedModel, reply: FastifyReply) {
    if (!isReady(model)) return reply.code(503).send({ error: `model "${model.name}" version "${model.version}" has no ready inference worker` });
    return { name: model.name, version: model.version, ready: true };
  }

  // A loaded model's inputs never change, so its limits are worked out once, not per request.
  const bodyLimits = new WeakMap<LoadedModel, { json: BodyLimit; binary: BodyLimit }>();
  function limitsOf(model: LoadedModel): { json: BodyLimit; binary: BodyLimit } {
    let limits = bodyLimits.get(model);
    if (!limits) {
      limits = { json: jsonBodyLimit(model, deps.bodyLimits), binary: binaryBodyLimit(model, deps.bodyLimits) };
      bodyLimits.set(model, limits);
    }
    return limits;
  }

  /** Before any body byte is read: an unknown model is a 404, and the body limit fits the model. */
  async function limitInferBody(req: FastifyRequest<{ Params: ModelParams }>) {
    const { json, binary } = limitsOf(resolve(req.params));
    const header = req.headers[BINARY_HEADER];
    if (header === undefined) {
      setBodyLimit(req, json);
      return;
    }
    // The binary header is parsed as JSON all the same: without its own bound, a JSON request sent as
    // one big "header" would get the binary limit and the binary extension would undo the JSON one.
    const headerBytes = Number(Array.isArray(header) ? header[0] : header);
    if (headerBytes > json.bytes) {
      throw new EdgefleetError('PAYLOAD_TOO_LARGE', `binary inference header of ${headerBytes} bytes (${BINARY_HEADER}) is over the ${json.bytes}-byte limit for ${json.reason}`);
    }
    setBodyLimit(req, binary);
  }

  async function infer(req: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) {
    const model = resolve(req.params);
    const started = performance.now();
    let ok = false;
    try {
      const header = req.headers[BINARY_HEADER];
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const { request, tail } = parseInferBody(body, Array.isArray(header) ? header[0] : header);
      const plan = planOutputs(request, model.outputs);
      // The body reader gives each body a buffer of its own (tensor data already aligned): this request's
      // to move to a worker without a copy.
      const owned = ownsItsBuffer(body) && body.buffer instanceof ArrayBuffer;
      const inputs = requestTensors(request, tail, model.inputs, owned);
      const sample = deps.shadow?.tap(model.name);
      const candidateInputs = sample ? inputs.map(copyTensor) : undefined;
      const inferStarted = performance.now();
      let outputs: Tensor[];
      try {
        outputs = await model.infer(inputs);
      } catch (err) {
        sample?.abandon();
        throw err;
      }
      // The candidate runs after this response, on its own copy; its result or error never reaches the client.
      sample?.compare(candidateInputs!, outputs, performance.now() - inferStarted);
      const meta = { model_name: model.name, model_version: model.version, ...(request.id === undefined ? {} : { id: request.id }) };
      const encoded = encodeInferResponse(meta, outputs, plan);
      ok = true;
      if (encoded.kind === 'json') return encoded.body;
      return reply.header(BINARY_HEADER, encoded.headerLength).type('application/octet-stream').send(encoded.body);
    } finally {
      const ms = performance.now() - started;
      models.record(model.name, model.version, ms, ok);
      metrics.observe(model.name, model.version, ms / 1000, ok);
    }
  }

  app.get('/v2', async (): Promise<ServerMetadata> => ({ name: deps.serverName, version: deps.serverVersion, extensions: ['binary_tensor_data', ...(deps.extensions ?? [])] }));
  app.get('/v2/health/live', async () => ({ live: true }));
  // Ready = the server is up and every active model has a ready worker (no models loaded is ready too:
  // clients waiting for a particular model ask /v2/models/{name}/ready).
  app.get('/v2/health/ready', async (_req, reply) => {
    const notReady = models.list().filter((m) => !isReady(m));
    if (notReady.length > 0) return reply.code(503).send({ error: `models not ready: ${notReady.map((m) => m.name).join(', ')}` });
    return { ready: true };
  });
  for (const prefix of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
    app.get<{ Params: ModelParams }>(prefix, async (req) => metadata(resolve(req.params)));
    app.get<{ Params: ModelParams }>(`${prefix}/ready`, async (req, reply) => ready(resolve(req.params), reply));
    app.post<{ Params: ModelParams }>(`${prefix}/infer`, { preParsing: limitInferBody }, infer);
  }
  app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
}
