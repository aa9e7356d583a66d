import type { ServerResponse } from 'node:http';
import {
  FORWARDED_CLIENT_HEADERS, GatewayError, H, childTraceparent, createHeaders, errorFromReply, publishCancel, toGatewayError,
  type Inbox, type Msg, type MsgHeaders, type NatsConnection, type ReplyMux,
} from '@homelab/bus';
import type { Dialect } from '@homelab/dialects';
import type { Logger } from '@homelab/logging';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** What a relay needs of the bus: filled in once NATS is connected. */
export interface RelayBus {
  nc?: NatsConnection;
  mux?: ReplyMux;
  connected: boolean;
}

export interface RelayRequest {
  subject: string;
  /** The client's body, unparsed: the router parses it once. */
  body: Uint8Array;
  dialect: Dialect;
  /** The key the client presented, passed on for the router to verify. */
  apiKey?: string | undefined;
  localOnly: boolean;
  /** The W3C traceparent this hop sends downstream. */
  traceparent?: string | undefined;
  /** Rewrites a single answer before it goes out (e.g. the model list filtered for a key); undefined = refuse; a throw = that error. */
  rewrite?: (body: Uint8Array) => Uint8Array | undefined;
  /** The subject answers errors in OpenAI's shape (`inference.models`): shape them here in `dialect`. */
  reshapeErrors?: boolean;
}

export interface RelayDeps {
  bus: RelayBus;
  log: Logger;
  /** Silence before the first message (the router and worker send keepalives while they hold the request). */
  firstMessageTimeoutMs: number;
  /** Silence between two messages of a stream. */
  idleTimeoutMs: number;
}

/** A client that reads slower than the answer comes, by this much, is cut: memory stays bounded. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/**
 * Sends one request on the bus and writes its answer to the HTTP client as the bytes arrive
 * (docs/subjects.md has the framing). One callback per message, no parsing: a single answer goes out
 * as it came; a stream's messages are written as they come, several arriving together in one socket
 * write. A client that goes away cancels the request upstream.
 */
export function relay(request: FastifyRequest, reply: FastifyReply, what: RelayRequest, deps: RelayDeps): Promise<void> {
  const { nc, mux } = deps.bus;
  if (!nc || !mux || !deps.bus.connected) {
    sendError(reply, what.dialect, new GatewayError('backend_unavailable', 'the gateway is not connected to its message bus yet; retry shortly'), request.id);
    return Promise.resolve();
  }
  return new Promise((resolve) => new AnswerRelay(request, reply, nc, mux, what, deps, resolve).start());
}

class AnswerRelay {
  readonly #request: FastifyRequest;
  readonly #reply: FastifyReply;
  readonly #raw: ServerResponse;
  readonly #nc: NatsConnection;
  readonly #what: RelayRequest;
  readonly #timeouts: RelayDeps;
  readonly #log: Logger;
  readonly #done: () => void;
  readonly #started = performance.now();
  readonly #inbox: Inbox;
  #streaming = false;
  #finished = false;

  constructor(request: FastifyRequest, reply: FastifyReply, nc: NatsConnection, mux: ReplyMux, what: RelayRequest, deps: RelayDeps, done: () => void) {
    this.#request = request;
    this.#reply = reply;
    this.#raw = reply.raw;
    this.#nc = nc;
    this.#what = what;
    this.#timeouts = deps;
    this.#log = deps.log;
    this.#done = done;
    this.#inbox = mux.open((msg) => this.#onMessage(msg), (reason) => this.#onSilence(reason), deps.firstMessageTimeoutMs);
  }

  start(): void {
    // A client that hung up while its request was still being read: nothing to send anywhere.
    if (this.#raw.destroyed || this.#raw.socket?.destroyed !== false) return this.#close();
    this.#raw.once('close', this.#onClose);
    this.#nc.publish(this.#what.subject, this.#what.body, { reply: this.#inbox.subject, headers: this.#busHeaders() });
  }

  #busHeaders(): MsgHeaders {
    const request = this.#request;
    const headers = createHeaders();
    headers.set(H.requestId, request.id);
    headers.set(H.traceparent, this.#what.traceparent ?? childTraceparent(request.headers['traceparent'] as string | undefined));
    if (this.#what.apiKey) headers.set(H.apiKey, this.#what.apiKey);
    if (this.#what.localOnly) headers.set(H.route, 'local-only');
    for (const name of FORWARDED_CLIENT_HEADERS) {
      const value = request.headers[name];
      if (typeof value === 'string') headers.set(name, value);
    }
    return headers;
  }

  #onMessage(msg: Msg): void {
    if (!msg.headers) {
      // Later messages of a stream carry no headers: the bytes go straight to the client. Before a
      // stream, a message without headers is a whole answer (a service's plain JSON reply).
      if (!this.#streaming) return this.#single(msg);
      this.#inbox.touch(this.#timeouts.idleTimeoutMs);
      this.#write(msg.data);
      return;
    }
    const frame = msg.headers.get(H.stream);
    if (frame === 'keepalive') return this.#onKeepalive();
    this.#inbox.touch(this.#timeouts.idleTimeoutMs);
    if (frame === 'data') return this.#startStream(msg);
    if (frame === 'end') return this.#finish(msg.data);
    // The server's no-responders status: no router is there.
    if (msg.data.length === 0 && msg.headers.code === 503 && !this.#streaming) {
      return this.#fail(new GatewayError('no_backend', 'no router is answering; retry shortly'));
    }
    const error = errorFromReply(msg.headers, msg.data);
    if (error) return this.#streaming ? this.#finish(msg.data) : this.#fail(error, msg);
    this.#single(msg);
  }

  /** A whole answer: its bytes go to the client as they are. */
  #single(msg: Msg): void {
    let data: Uint8Array | undefined;
    try {
      data = this.#what.rewrite ? this.#what.rewrite(msg.data) : msg.data;
    } catch (err) {
      // A rewrite may refuse with its own error (e.g. Ollama's `model 'x' not found`); anything else is ours.
      return this.#fail(toGatewayError(err));
    }
    if (!data) return this.#fail(new GatewayError('model_not_found', 'The model does not exist or this API key may not use it', { param: 'model' }));
    answerHeaders(this.#reply, msg.headers, this.#started);
    this.#reply.code(200).header('content-type', msg.headers?.get(H.contentType) || 'application/json').send(asBuffer(data));
    this.#close();
  }

  #startStream(msg: Msg): void {
    this.#streaming = true;
    answerHeaders(this.#reply, msg.headers, this.#started);
    this.#reply.hijack();
    this.#raw.writeHead(200, {
      ...(this.#reply.getHeaders() as Record<string, string>),
      'content-type': msg.headers?.get(H.contentType) || this.#what.dialect.framing?.contentType || 'text/event-stream',
      'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no',
    });
    this.#write(msg.data);
  }

  #onKeepalive(): void {
    // Someone still holds the request: the silence clock starts over.
    this.#inbox.touch(this.#streaming ? this.#timeouts.idleTimeoutMs : this.#timeouts.firstMessageTimeoutMs);
    const bytes = this.#what.dialect.framing?.keepalive;
    if (this.#streaming && bytes) this.#write(Buffer.from(bytes));
  }

  /**
   * Writes stream bytes (the worker already put what the backend sent together into one message). A
   * client that does not read lets the socket's buffer grow; past a bound, its stream is cut and the
   * request cancelled upstream, so a stalled reader cannot hold the gateway's memory.
   */
  #write(bytes: Uint8Array): void {
    if (bytes.length === 0 || this.#raw.destroyed) return;
    if (this.#raw.writableLength > MAX_BUFFERED_BYTES) {
      this.#log.warn({ requestId: this.#request.id }, 'client reads too slowly: stream cut');
      this.#cancel();
      this.#raw.destroy();
      return;
    }
    this.#raw.write(bytes);
  }

  #finish(bytes: Uint8Array): void {
    if (!this.#raw.destroyed) this.#raw.end(bytes.length > 0 ? bytes : undefined);
    this.#close();
  }

  #fail(error: GatewayError, msg?: Msg): void {
    if (this.#streaming) {
      const tail = this.#what.dialect.streamError?.(error);
      this.#finish(tail ? Buffer.from(tail) : new Uint8Array(0));
      return;
    }
    sendError(this.#reply, this.#what.dialect, error, this.#request.id, msg, this.#what.reshapeErrors);
    this.#close();
  }

  #onSilence(reason: 'timeout' | 'disconnected'): void {
    this.#cancel();
    this.#fail(reason === 'timeout'
      ? new GatewayError('timeout', `no answer within ${this.#streaming ? this.#timeouts.idleTimeoutMs : this.#timeouts.firstMessageTimeoutMs} ms (${this.#streaming ? 'between chunks' : 'first message'})`)
      : new GatewayError('backend_unavailable', 'the gateway lost its message bus connection while waiting for the answer; retry'));
  }

  readonly #onClose = (): void => {
    if (this.#finished) return;
    // The client went away before the answer ended: stop the work upstream.
    this.#cancel();
    this.#close();
  };

  #cancel(): void {
    if (!this.#finished) publishCancel(this.#nc, this.#request.id);
  }

  #close(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#inbox.close();
    this.#raw.off('close', this.#onClose);
    this.#done();
  }
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** The gateway's explanation headers on an answer. */
function answerHeaders(reply: FastifyReply, headers: MsgHeaders | undefined, started: number): void {
  reply.header('x-request-id', reply.request.id);
  if (!headers) return;
  const pairs: [string, string][] = [
    ['x-homelab-backend', H.backend], ['x-homelab-model', H.model], ['x-homelab-attempts', H.attempt], ['x-homelab-route-reason', H.routeReason],
  ];
  for (const [http, nats] of pairs) {
    const value = headers.get(nats);
    if (value) reply.header(http, value);
  }
  const backendMs = Number(headers.get(H.backendMs));
  if (backendMs > 0) reply.header('x-homelab-overhead-ms', Math.max(0, performance.now() - started - backendMs).toFixed(3));
}

/**
 * An error in the client's dialect, with the dialect's own error headers. A body that came from the
 * router or a worker is already in that shape and goes out as it is (unless `reshape`: the service
 * answered in OpenAI's shape); an error made here is shaped by the dialect.
 */
export function sendError(reply: FastifyReply, dialect: Dialect, error: GatewayError, requestId: string, msg?: Msg, reshape = false): void {
  const shaped = dialect.error(error);
  reply.code(shaped.status).header('x-request-id', requestId).header('content-type', 'application/json');
  const reason = msg?.headers?.get(H.routeReason);
  if (reason) reply.header('x-homelab-route-reason', reason);
  const attempts = msg?.headers?.get(H.attempt);
  if (attempts) reply.header('x-homelab-attempts', attempts);
  if (error.retryAfterMs !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))));
  if (dialect.errorHeaders) reply.headers(dialect.errorHeaders(error));
  reply.send(msg && msg.data.length > 0 && !reshape ? asBuffer(msg.data) : shaped.body);
}

/** `local-only` anywhere in the header (any case, repeated, in a list): when in doubt, the request stays in the lab. */
export function wantsLocalOnly(value: string | string[] | undefined): boolean {
  const text = Array.isArray(value) ? value.join(',') : value ?? '';
  return text.split(',').some((token) => token.trim().toLowerCase() === 'local-only');
}
