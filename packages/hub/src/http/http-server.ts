import { ERROR_CODES, isEdgefleetError, type ErrorCode } from '@edgefleet/shared';
import cookie from '@fastify/cookie';
import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { answerClientError, frameworkErrorAnswer, MAX_PARAM_LENGTH } from './client-errors.js';
import { securityHeaders } from './security-headers.js';
import { validationMessage } from './validation-message.js';

function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status === 413) return 'PAYLOAD_TOO_LARGE';
  if (status === 416) return 'RANGE_NOT_SATISFIABLE';
  if (status === 414) return 'URI_TOO_LONG';
  if (status === 431) return 'HEADERS_TOO_LARGE';
  if (status >= 400 && status < 500) return 'BAD_REQUEST';
  if (status === 503) return 'UNAVAILABLE';
  return 'INTERNAL';
}

export interface HttpServerOptions {
  /** HTTPS with this PEM certificate (chain) and key; plain HTTP when absent. */
  https?: { cert: string; key: string };
}

/**
 * Fastify with TypeBox validation, the OpenAPI generator, security headers and the one error
 * handler: EdgefleetError codes → HTTP status, `{error, code}`. Errors raised before routing (URI
 * or headers too long, a broken request) get the same shape.
 */
export async function createHttpServer(log: Logger, opts: HttpServerOptions = {}): Promise<FastifyInstance> {
  // Per-request access logs only at debug; errors are logged by the error handler.
  const httpLog = log.isLevelEnabled('debug') ? log : log.child({}, { level: 'warn' });
  const app = Fastify({
    loggerInstance: httpLog,
    forceCloseConnections: true,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    ...(opts.https ? { https: opts.https } : {}),
    frameworkErrors: (err, _req, reply) => {
      const { status, answer } = frameworkErrorAnswer(err);
      void (reply as FastifyReply).code(status).send(answer);
    },
    clientErrorHandler: answerClientError,
  })
    .setValidatorCompiler(TypeBoxValidatorCompiler)
    .withTypeProvider<TypeBoxTypeProvider>();

  await app.register(helmet, securityHeaders(opts.https !== undefined));
  await app.register(cookie);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'edgefleet hub API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, device: { type: 'http', scheme: 'basic' } } },
      security: [{ bearer: [] }],
    },
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (isEdgefleetError(err)) {
      return reply.code(ERROR_CODES[err.code]).send({ error: err.message, code: err.code });
    }
    if (err.validation) {
      const context = err.validationContext ?? 'request';
      return reply.code(400).send({ error: `invalid request: ${validationMessage(context, err.validation)}`, code: 'BAD_REQUEST' });
    }
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err, url: req.url }, 'request failed');
    return reply.code(status).send({ error: status >= 500 ? 'internal error' : err.message, code: codeForStatus(status) });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url}`, code: 'NOT_FOUND' }));

  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app as unknown as FastifyInstance;
}
