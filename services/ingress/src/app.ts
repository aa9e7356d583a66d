import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { GatewayError, newRequestId, type KeyRegistry } from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import type { Tracing } from '@homelab/tracing';
import { dialectForRequest, edge } from './edge.ts';
import { sendError, type RelayBus } from './relay.ts';
import { imagesPlugin } from './images/index.ts';
import { anthropicRoutes } from './routes/anthropic.ts';
import { modelRoutes } from './routes/models.ts';
import { ollamaRoutes } from './routes/ollama.ts';
import { openAIRoutes } from './routes/openai.ts';
import { responsesRoutes } from './routes/responses.ts';
import { statusRoutes } from './routes/status.ts';

/** What the ingress needs of the bus; filled in once NATS is connected. */
export interface IngressBus extends RelayBus {
  /** Set when shutting down: /readyz answers 503 first, so load balancers stop sending. */
  draining: boolean;
}

export interface IngressDeps {
  config: LabConfig;
  log: Logger;
  bus: IngressBus;
  /** The accepted API keys; undefined when `auth.mode` is `none`. */
  keys?: KeyRegistry;
  /** How many ingress replicas run (a key's rate limit is split among them). */
  replicas?: () => number;
  /** A span per HTTP request when tracing is on. */
  tracing?: Tracing;
}

const REQUEST_ID = /^[\w.:@/-]{1,128}$/;

/**
 * The HTTP edge: each API the house's clients speak, as a thin adapter onto the NATS API that
 * scripts use too (docs/subjects.md). Bodies pass on as bytes, unparsed: the router parses and
 * validates each once, and answers come back from the workers as bytes that go out unchanged.
 */
export function buildApp({ config, log, bus, tracing, keys, replicas = () => 1 }: IngressDeps): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: config.gateway.bodyLimitBytes,
    routerOptions: { maxParamLength: 512, ignoreTrailingSlash: true },
    // The client's `x-request-id` when it sent a sane one: its logs and ours then share the id.
    requestIdHeader: false,
    genReqId: (raw) => {
      const given = raw.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : newRequestId();
    },
    // While draining, a request that arrives on an open keep-alive connection is still served: a 503
    // here is one a balancer would not retry elsewhere (idle connections are closed, which it does retry).
    return503OnClosing: false,
    connectionTimeout: 0,
    keepAliveTimeout: 65_000,
    // The whole request (headers and body) must arrive within this: slow-drip clients are cut off.
    requestTimeout: 30_000,
    // Node checks requestTimeout and headersTimeout only every connectionsCheckingInterval (30 s by
    // default): without this, a body that never ends is cut after 90 s, headers after 60 s.
    http: { connectionsCheckingInterval: 2_000 },
    // Errors Fastify answers before any route (a malformed URL, a parameter too long): in the API's shape too.
    frameworkErrors: (err, request, reply) => {
      sendError(reply, dialectForRequest(request), new GatewayError('invalid_request', err.message, { status: err.statusCode ?? 400 }), request.id);
    },
    // Errors Node's HTTP parser answers on the raw socket (bad bytes, headers too large, request timeout).
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, message] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'request headers are too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'the request was not received in time']
        : [400, `malformed HTTP request (${err.code ?? 'parse error'})`];
      const body = JSON.stringify(new GatewayError('invalid_request', message, { status }).toOpenAI());
      if (socket.writable) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      socket.destroy(err);
    },
    trustProxy: ['127.0.0.1', '::1'],
  });

  // Bodies stay bytes: whether they are JSON, and valid, is the router's to say, for HTTP and NATS alike.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, request, reply) => {
    let error: GatewayError;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') error = new GatewayError('body_too_large', `request body is larger than ${config.gateway.bodyLimitBytes} bytes`);
    else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) error = new GatewayError('invalid_request', err.message);
    else {
      log.error({ err, url: request.url }, 'ingress error');
      error = new GatewayError('internal_error', 'internal error');
    }
    sendError(reply, dialectForRequest(request), error, request.id);
  });
  app.setNotFoundHandler((request, reply) => {
    sendError(reply, dialectForRequest(request), new GatewayError('not_found', `Unknown request URL: ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}`), request.id);
  });

  const routeDeps = {
    relay: { bus, log, firstMessageTimeoutMs: config.gateway.silenceTimeoutMs, idleTimeoutMs: config.gateway.silenceTimeoutMs },
    tracing,
  };
  void app.register(edge, { config, keys, replicas });
  void app.register(statusRoutes, { ...routeDeps, draining: () => bus.draining });
  void app.register(openAIRoutes, routeDeps);
  void app.register(anthropicRoutes, routeDeps);
  void app.register(modelRoutes, routeDeps);
  void app.register(ollamaRoutes, routeDeps);
  void app.register(responsesRoutes, routeDeps);
  void app.register(imagesPlugin, { config, log, bus, keysOn: keys !== undefined });
  return app;
}
