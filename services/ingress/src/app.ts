import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  GatewayError, H, Subjects, childTraceparent, createHeaders, errorFromReply, keyAllowsModel, newRequestId, requestStream,
  type KeyRecord, type KeyRegistry, type Msg, type MsgHeaders, type NatsConnection, type ReplyMux,
} from '@homelab/bus';
import { RateLimiter } from './rate-limit.ts';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { HomelabSpanAttr, type Tracing } from '@homelab/tracing';

/** What the ingress needs of the bus; filled in once NATS is connected. */
export interface IngressBus {
  nc?: NatsConnection;
  mux?: ReplyMux;
  connected: boolean;
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
const SSE_DATA = Buffer.from('data: ');
const SSE_END = Buffer.from('\n\n');
const SSE_DONE = Buffer.from('data: [DONE]\n\n');
// An SSE comment: clients ignore it, and proxies see the connection is alive during a long silence.
const SSE_KEEPALIVE = Buffer.from(': keepalive\n\n');

/**
 * The OpenAI-compatible HTTP edge. It is a thin adapter onto the NATS API that scripts use too
 * (docs/subjects.md): the body is passed on as bytes, unparsed; the router parses and validates
 * it once, and the answer comes back from the worker as bytes that go to the client unchanged.
 */
export function buildApp({ config, log, bus, tracing, keys, replicas = () => 1 }: IngressDeps): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: config.gateway.bodyLimitBytes,
    routerOptions: { maxParamLength: 512 },
    requestIdHeader: false,
    genReqId: () => '',
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
    // Errors Fastify answers before any route (a malformed URL, a parameter too long): OpenAI's shape too.
    frameworkErrors: (err, request, reply) => {
      sendError(reply, new GatewayError('invalid_request', err.message, { status: err.statusCode ?? 400 }), requestIdOf(request));
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
  const limiter = new RateLimiter();

  const timeouts = streamTimeouts(config);
  let inFlight = 0;
  app.decorate('inFlight', () => inFlight);

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
    sendError(reply, error, requestIdOf(request));
  });
  app.setNotFoundHandler((request, reply) => {
    sendError(reply, new GatewayError('not_found', `Unknown request URL: ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}`), requestIdOf(request));
  });

  // Browsers: only the configured origins may call the API (none by default).
  const cors = new Set(config.auth.corsOrigins);
  if (cors.size > 0) {
    app.addHook('onRequest', async (request, reply) => {
      const origin = request.headers.origin;
      if (!origin || !(cors.has('*') || cors.has(origin))) return;
      reply.header('access-control-allow-origin', cors.has('*') ? '*' : origin).header('vary', 'origin');
      reply.header('access-control-expose-headers', 'x-request-id, x-homelab-backend, x-homelab-model, x-homelab-attempts, x-homelab-route-reason, retry-after');
    });
    app.options('/*', (_request, reply) => {
      reply.header('access-control-allow-methods', 'GET, POST, OPTIONS')
        .header('access-control-allow-headers', 'authorization, content-type, x-api-key, x-request-id, x-homelab-route, traceparent')
        .header('access-control-max-age', '600').code(204).send();
    });
  }

  // The API: a rate limit per client address first (so guessing keys is slow), then the key, then its own rate limit.
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/v1/') || request.method === 'OPTIONS') return;
    // A browser on another site sends its Origin: refuse unless configured, so no web page can make a
    // visitor's browser use the gateway (even where it could not read the answer).
    const origin = request.headers.origin;
    if (origin && !(cors.has('*') || cors.has(origin))) {
      sendError(reply, new GatewayError('forbidden', `requests from the web origin ${origin.slice(0, 100)} are not allowed (auth.corsOrigins)`), requestIdOf(request));
      return reply;
    }
    const byIp = config.auth.ipRateLimitPerMinute > 0 ? limiter.take(`ip:${request.ip}`, config.auth.ipRateLimitPerMinute) : { ok: true as const };
    // An async hook that answered returns the reply, so Fastify stops there.
    if (!byIp.ok) {
      sendError(reply.header('retry-after', String(byIp.retryAfterS)), new GatewayError('rate_limited', `too many requests from ${request.ip}; retry in ${byIp.retryAfterS} s`), requestIdOf(request));
      return reply;
    }
    if (!keys) return;
    const presented = bearer(request.headers.authorization) ?? headerValue(request.headers['x-api-key']);
    const key = keys.authenticate(presented);
    if (!key) {
      sendError(reply, new GatewayError('invalid_api_key', presented
        ? 'Incorrect API key provided (or it was revoked). Ask the lab\'s owner for a key (`homelab keys create NAME`).'
        : 'You didn\'t provide an API key. Send it as `Authorization: Bearer <key>` (or `x-api-key`).'), requestIdOf(request));
      return reply;
    }
    if (key.rateLimitPerMinute) {
      const byKey = limiter.take(`key:${key.name}`, Math.max(1, key.rateLimitPerMinute / Math.max(1, replicas())));
      if (!byKey.ok) {
        sendError(reply.header('retry-after', String(byKey.retryAfterS)), new GatewayError('rate_limited', `rate limit of key '${key.name}' (${key.rateLimitPerMinute} requests a minute) reached; retry in ${byKey.retryAfterS} s`), requestIdOf(request));
        return reply;
      }
    }
    (request as FastifyRequest & { homelabKey?: KeyRecord }).homelabKey = key;
  });

  app.get('/healthz', async (request, reply) => {
    reply.header('x-request-id', requestIdOf(request)).send({ status: 'ok' });
  });

  let routerSeenAt = 0;
  app.get('/readyz', async (request, reply) => {
    const checks = { nats: bus.connected, router: false, draining: bus.draining };
    if (bus.nc && bus.connected) {
      if (Date.now() - routerSeenAt < 2000) checks.router = true;
      else {
        try {
          await bus.nc.request('$SRV.PING.router', undefined, { timeout: 1000 });
          routerSeenAt = Date.now();
          checks.router = true;
        } catch { /* not ready */ }
      }
    }
    const ready = checks.nats && checks.router && !checks.draining;
    reply.code(ready ? 200 : 503).header('x-request-id', requestIdOf(request)).send({ status: ready ? 'ready' : 'not ready', ...checks });
  });

  const forward = (subject: string) => async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const body = request.body instanceof Buffer ? request.body : Buffer.alloc(0);
    await relay(request, reply, subject, body);
  };
  app.post('/v1/chat/completions', forward(Subjects.chatCompletions.subject));
  app.post('/v1/embeddings', forward(Subjects.embeddings.subject));
  app.get('/v1/models', (request, reply) => relay(request, reply, Subjects.models.subject, Buffer.alloc(0)));
  app.get('/v1/models/*', (request, reply) => {
    // Fastify has decoded the path once already: decoding again turns %25 into a URIError (a 500).
    const id = (request.params as { '*': string })['*'];
    if (!id) return relay(request, reply, Subjects.models.subject, Buffer.alloc(0)); // `/v1/models/` is the list, as at OpenAI
    return relay(request, reply, Subjects.models.subject, Buffer.from(JSON.stringify({ id })));
  });
  app.get('/status', (request, reply) => relay(request, reply, 'health.status', Buffer.alloc(0)));

  /** Sends a request on the bus and writes the answer: one JSON, or an SSE stream of chunks. */
  async function relay(request: FastifyRequest, reply: FastifyReply, subject: string, body: Uint8Array): Promise<void> {
    const requestId = requestIdOf(request);
    const { nc, mux } = bus;
    if (!nc || !mux || !bus.connected) return sendError(reply, new GatewayError('backend_unavailable', 'the gateway is not connected to its message bus yet; retry shortly'), requestId);
    const started = performance.now();
    const headers = createHeaders();
    headers.set(H.requestId, requestId);
    const inbound = request.headers['traceparent'] as string | undefined;
    const hop = tracing?.enabled ? tracing.startHop(`${request.method} ${request.routeOptions.url ?? ''}`, {
      traceparent: inbound, kind: 'server',
      attributes: { 'http.request.method': request.method, 'http.route': request.routeOptions.url ?? '', [HomelabSpanAttr.requestId]: requestId },
    }) : undefined;
    headers.set(H.traceparent, hop?.traceparent ?? childTraceparent(inbound));
    const key = (request as FastifyRequest & { homelabKey?: KeyRecord }).homelabKey;
    if (key) headers.set(H.apiKey, key.name);
    if (wantsLocalOnly(request.headers['x-homelab-route']) || key?.localOnly) headers.set(H.route, 'local-only');

    const controller = new AbortController();
    const onClose = (): void => { if (!reply.raw.writableFinished) controller.abort(); };
    reply.raw.once('close', onClose);
    inFlight++;
    let streaming = false;
    try {
      const onKeepalive = (): void => { if (streaming) reply.raw.write(SSE_KEEPALIVE); };
      for await (const msg of requestStream(nc, mux, subject, body, { headers, ...timeouts, signal: controller.signal, onKeepalive })) {
        const frame = msg.headers?.get(H.stream);
        if (!streaming) {
          const error = errorFromReply(msg.headers, msg.data);
          if (error) return sendError(reply, error, requestId, msg);
          if (frame !== 'chunk') {
            // A single answer: the worker's bytes go to the client as they are.
            answerHeaders(reply, msg.headers, requestId, started);
            const data = key && subject === Subjects.models.subject ? modelsForKey(msg.data, key) : asBuffer(msg.data);
            if (!data) return sendError(reply, new GatewayError('model_not_found', 'The model does not exist or this API key may not use it', { param: 'model' }), requestId);
            reply.code(200).header('content-type', 'application/json').send(data);
            return;
          }
          streaming = true;
          answerHeaders(reply, msg.headers, requestId, started);
          reply.hijack();
          reply.raw.writeHead(200, {
            ...(reply.getHeaders() as Record<string, string>),
            'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no',
          });
        }
        if (frame === 'chunk') {
          if (msg.data.length > 0) reply.raw.write(Buffer.concat([SSE_DATA, asBuffer(msg.data), SSE_END]));
        } else if (frame === 'end') {
          reply.raw.end(SSE_DONE);
        } else {
          // An error after content was sent: say so explicitly in OpenAI's shape; no [DONE], the answer is cut.
          reply.raw.end(Buffer.concat([SSE_DATA, asBuffer(msg.data), SSE_END]));
        }
      }
    } catch (err) {
      const error = err instanceof GatewayError ? err : new GatewayError('internal_error', 'internal error', { cause: err });
      if (error.code === 'internal_error') log.error({ err, requestId }, 'relay failed');
      if (controller.signal.aborted) { if (!reply.raw.destroyed) reply.raw.destroy(); return; }
      if (!streaming) return sendError(reply, error, requestId);
      if (!reply.raw.writableEnded) reply.raw.end(Buffer.concat([SSE_DATA, Buffer.from(JSON.stringify(error.toOpenAI())), SSE_END]));
    } finally {
      inFlight--;
      reply.raw.off('close', onClose);
      if (hop) {
        hop.setAttributes({ 'http.response.status_code': reply.statusCode });
        if (reply.statusCode >= 500) hop.fail(new Error(`HTTP ${reply.statusCode}`), String(reply.statusCode));
        hop.end();
      }
    }
  }

  return app;
}

/** `local-only` anywhere in the header (any case, repeated, in a list): when in doubt, the request stays in the lab. */
function wantsLocalOnly(value: string | string[] | undefined): boolean {
  const text = Array.isArray(value) ? value.join(',') : value ?? '';
  return text.split(',').some((token) => token.trim().toLowerCase() === 'local-only');
}

function bearer(value: string | undefined): string | undefined {
  return value?.startsWith('Bearer ') ? value.slice(7).trim() : undefined;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** `GET /v1/models` for a key: only what it may use (its models and backends). Undefined: the one model asked for is not allowed. */
function modelsForKey(data: Uint8Array, key: KeyRecord): Buffer | undefined {
  const allowed = (m: { id: string; owned_by: string }): boolean =>
    keyAllowsModel(key, m.id) && (!key.backends || (key.backends as string[]).includes(m.owned_by)) && (!key.localOnly || m.owned_by === 'vllm' || m.owned_by === 'ollama');
  const body = JSON.parse(Buffer.from(data).toString('utf8')) as { object: string; data?: { id: string; owned_by: string }[]; id?: string; owned_by?: string };
  if (body.object === 'list' && body.data) return Buffer.from(JSON.stringify({ ...body, data: body.data.filter(allowed) }));
  return allowed(body as { id: string; owned_by: string }) ? Buffer.from(JSON.stringify(body)) : undefined;
}

function requestIdOf(request: FastifyRequest): string {
  const cached = (request as FastifyRequest & { homelabRequestId?: string }).homelabRequestId;
  if (cached) return cached;
  const given = request.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : newRequestId();
  (request as FastifyRequest & { homelabRequestId?: string }).homelabRequestId = id;
  return id;
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function answerHeaders(reply: FastifyReply, headers: MsgHeaders | undefined, requestId: string, started: number): void {
  reply.header('x-request-id', requestId);
  if (!headers) return;
  const backend = headers.get(H.backend);
  if (backend) reply.header('x-homelab-backend', backend);
  const model = headers.get(H.model);
  if (model) reply.header('x-homelab-model', model);
  const attempt = headers.get(H.attempt);
  if (attempt) reply.header('x-homelab-attempts', attempt);
  const reason = headers.get(H.routeReason);
  if (reason) reply.header('x-homelab-route-reason', reason);
  const backendMs = Number(headers.get(H.backendMs));
  if (backendMs > 0) reply.header('x-homelab-overhead-ms', Math.max(0, performance.now() - started - backendMs).toFixed(3));
}

function sendError(reply: FastifyReply, error: GatewayError, requestId: string, msg?: Msg): void {
  reply.code(error.status).header('x-request-id', requestId).header('content-type', 'application/json');
  const reason = msg?.headers?.get(H.routeReason);
  if (reason) reply.header('x-homelab-route-reason', reason);
  const attempts = msg?.headers?.get(H.attempt);
  if (attempts) reply.header('x-homelab-attempts', attempts);
  if (error.retryAfterMs !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))));
  // The worker's error body is already OpenAI's shape; a rebuilt one is used when there is none.
  reply.send(msg && msg.data.length > 0 ? asBuffer(msg.data) : JSON.stringify(error.toOpenAI()));
}

/**
 * How long the ingress listens to silence. The router and the worker send a keepalive every 2 s
 * while they hold a request, so silence this long means the holder died: a clear 504 instead of a
 * wait as long as the slowest backend's first-token timeout.
 */
export function streamTimeouts(config: LabConfig): { firstMessageTimeoutMs: number; idleTimeoutMs: number } {
  return { firstMessageTimeoutMs: config.gateway.silenceTimeoutMs, idleTimeoutMs: config.gateway.silenceTimeoutMs };
}
