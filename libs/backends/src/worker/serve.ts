import {
  CancelledRequests, GatewayError, H, KeepaliveSender, Subjects, errorHeaders, respondJson, toGatewayError, waitUntilIdle, workerSubject,
  type EventPublisher, type MicroService, type Msg, type MsgHeaders, type NatsConnection, type ReplyMux, type WorkerModels, type WorkerOperation,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import type { Tracing } from '@homelab/tracing';
import { operationName } from '@homelab/dialects';
import type { Backend, ProviderName } from '../types.ts';
import { countTokens } from './count-tokens.ts';
import { readEnvelope, type WorkerEnvelope } from './envelope.ts';
import { WorkerRequest, type WorkerRequestDeps } from './request.ts';
import type { ResponsesStore } from './responses.ts';
import { startWorkerSpans } from './spans.ts';

export interface WorkerTimeouts {
  /** Longest silence between two pieces of an answer once it flows. */
  idleTimeoutMs: number;
  /** Longest a whole answer may take. */
  totalTimeoutMs: number;
}

export interface ServeBackendOptions {
  nc: NatsConnection;
  log: Logger;
  service: MicroService;
  /** The process's reply mux: failure reports to the router wait for its acknowledgement here. */
  mux: ReplyMux;
  events: EventPublisher;
  backend: Backend;
  timeouts: WorkerTimeouts;
  /** A span per request and one around the backend call, when tracing is on. */
  tracing?: Tracing;
  /** The backend's origin, for the client span's `server.address` / `server.port`. */
  backendUrl?: string;
  /** The Responses API's stored responses (`openResponsesStore`); absent: none kept or continued. */
  responses?: ResponsesStore;
}

interface InFlight { attempt: number; controller: AbortController }

/** How long the router has to acknowledge a failure report before the worker tells the requester itself. */
const REPORT_ACK_MS = 2000;

/** A running worker: how many answers it is giving, and its graceful stop. */
export interface ServedBackend {
  inFlight(): number;
  /** Called after the endpoints stopped taking requests: lets the answers in flight finish, then lets go. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Serves one backend on `worker.<provider>.{generate,embed,count_tokens,models}` (queue group per
 * provider).
 *
 * A request comes from the router with the requester's reply subject in `Homelab-Reply-To`: the
 * worker streams the answer straight there (docs/subjects.md) and tells the router, on the
 * request's own reply subject, how it went: `started` once a stream is committed (from then on the
 * router never switches backend), `done`, or a failure before content (the router may try elsewhere).
 */
export function serveBackend(options: ServeBackendOptions): ServedBackend {
  const worker = new BackendWorker(options);
  // Plain functions: callers pass `stop` around on its own (a list of shutdown steps).
  return { inFlight: () => worker.inFlight(), stop: (graceMs) => worker.stop(graceMs) };
}

class BackendWorker implements ServedBackend {
  readonly #o: ServeBackendOptions;
  readonly #provider: ProviderName;
  readonly #inFlight = new Map<string, InFlight>();
  /** Cancels that came before their request (the requester gave up while the router was placing it). */
  readonly #cancelled = new CancelledRequests();
  readonly #cancels: ReturnType<NatsConnection['subscribe']>;
  /** While the backend thinks (a cold load, a slow first token), the requester hears the worker is alive. */
  readonly #keepalive: KeepaliveSender;

  constructor(options: ServeBackendOptions) {
    this.#o = options;
    this.#provider = options.backend.provider;
    const { nc } = options;
    this.#cancels = nc.subscribe(Subjects.cancel.subject, { callback: (_err, msg) => this.#onCancel(msg) });
    this.#keepalive = new KeepaliveSender((replyTo, headers) => nc.publish(replyTo, undefined, { headers }));
    // Requests this worker is answering now (telemetry reads it from $SRV.STATS).
    this.#addEndpoint('generate', (msg) => this.#serve(msg), () => ({ in_flight: this.#inFlight.size }));
    this.#addEndpoint('embed', (msg) => this.#serve(msg));
    this.#addEndpoint('count_tokens', (msg) => this.#serve(msg));
    this.#addEndpoint('models', (msg) => this.#serveModels(msg));
    void this.#abortAllOnDisconnect();
  }

  inFlight(): number {
    return this.#inFlight.size;
  }

  async stop(graceMs = 25_000): Promise<void> {
    const finished = await waitUntilIdle(() => this.#inFlight.size, graceMs);
    if (!finished) this.#o.log.warn({ inFlight: this.#inFlight.size }, 'answers still in flight at shutdown; cutting them');
    this.#abortAll(new GatewayError('backend_unavailable', 'the worker is shutting down'));
    this.#cancels.unsubscribe();
    this.#keepalive.stop();
    await this.#o.backend.close();
  }

  #addEndpoint(operation: WorkerOperation, handler: (msg: Msg) => Promise<void>, statsData?: () => Record<string, unknown>): void {
    this.#o.service.addEndpoint(`${this.#provider}-${operation}`, {
      subject: workerSubject(this.#provider, operation), queue: `worker-${this.#provider}`, schema: null, ...(statsData && { statsData }),
      handler: ({ msg }) => handler(msg),
    });
  }

  #onCancel(msg: Msg): void {
    const id = msg.headers?.get(H.requestId);
    if (!id) return;
    const attempt = Number(msg.headers?.get(H.attempt));
    // The requester's own cancel (no attempt) may arrive before the request it cancels.
    if (!attempt) this.#cancelled.add(id);
    const entry = this.#inFlight.get(id);
    if (entry && (!attempt || attempt === entry.attempt)) entry.controller.abort(new GatewayError('cancelled', 'request cancelled'));
  }

  async #serve(msg: Msg): Promise<void> {
    const envelope = readEnvelope(msg);
    if (this.#cancelled.has(envelope.requestId)) return this.#reportFailure(msg, envelope, new GatewayError('cancelled', 'the requester went away before the request arrived'));
    const controller = new AbortController();
    if (envelope.dialect.operation === 'count_tokens') return this.#countTokens(msg, envelope, controller.signal);
    this.#inFlight.set(envelope.requestId, { attempt: envelope.attempt, controller });
    const held = this.#keepalive.hold(envelope.replyTo);
    const { totalTimeoutMs } = this.#o.timeouts;
    const total = setTimeout(() => controller.abort(new GatewayError('timeout', `${this.#provider} took longer than ${totalTimeoutMs} ms in total`)), totalTimeoutMs);
    try {
      await new WorkerRequest(envelope, msg.data, this.#requestDeps(msg, envelope, controller.signal, held.touch)).run();
    } finally {
      clearTimeout(total);
      held.release();
      if (this.#inFlight.get(envelope.requestId)?.controller === controller) this.#inFlight.delete(envelope.requestId);
    }
  }

  #requestDeps(msg: Msg, envelope: WorkerEnvelope, signal: AbortSignal, touch: () => void): WorkerRequestDeps {
    const { backend, log, timeouts, tracing, backendUrl, events, responses } = this.#o;
    return {
      backend, log, signal, timeouts, touch, publish: this.#publish, responses,
      spans: startWorkerSpans(tracing, envelope, this.#provider, operationName(envelope.dialect), backendUrl),
      outcome: (word) => msg.respond(OUTCOMES[word]),
      reportFailure: (error) => this.#reportFailure(msg, envelope, error),
      emit: (event) => events.emit('inferenceCompleted', event, { msgId: event.requestId }),
    };
  }

  #countTokens(msg: Msg, envelope: WorkerEnvelope, signal: AbortSignal): Promise<void> {
    return countTokens(envelope, msg.data, {
      backend: this.#o.backend, publish: this.#publish, signal, touch: () => {},
      outcome: (word) => msg.respond(OUTCOMES[word]), reportFailure: (error) => this.#reportFailure(msg, envelope, error),
    });
  }

  async #serveModels(msg: Msg): Promise<void> {
    const models = await this.#o.backend.listModels(AbortSignal.timeout(5000)).catch((err: unknown) => { throw toGatewayError(err, 'backend_unavailable'); });
    const reply: WorkerModels = {
      provider: this.#provider,
      // The backend's own facts first: they never replace the id, created or loaded.
      models: models.map((m) => ({ ...m.facts, id: m.id, ...(m.created !== undefined && { created: m.created }), ...(m.loaded !== undefined && { loaded: m.loaded }) })),
    };
    respondJson(msg, reply);
  }

  readonly #publish = (subject: string, body: Uint8Array | string, headers?: MsgHeaders): void => {
    if (headers) this.#o.nc.publish(subject, body, { headers });
    else this.#o.nc.publish(subject, body);
  };

  /**
   * The router decides what follows a failure before content (retry, fallback, or the error to the
   * client) and acknowledges the report. No acknowledgement means the router is gone: then the
   * requester gets the error in its own dialect straight away instead of waiting for its timeout.
   */
  #reportFailure(msg: Msg, envelope: WorkerEnvelope, error: GatewayError): void {
    if (!msg.reply) return;
    const { nc, mux } = this.#o;
    mux.request(nc, msg.reply, encoder.encode(JSON.stringify(error.toOpenAI())), { headers: errorHeaders(error), timeoutMs: REPORT_ACK_MS }).catch(() => {
      if (error.code !== 'cancelled') nc.publish(envelope.replyTo, envelope.dialect.error(error).body, { headers: errorHeaders(error) });
    });
  }

  /** A lost bus connection: answers cannot reach anyone, so stop the backend work at once. */
  async #abortAllOnDisconnect(): Promise<void> {
    for await (const status of this.#o.nc.status()) {
      if (status.type === 'disconnect') this.#abortAll(new GatewayError('backend_unavailable', 'the worker lost its message bus connection'));
    }
  }

  #abortAll(reason: GatewayError): void {
    for (const entry of this.#inFlight.values()) entry.controller.abort(reason);
  }
}

const encoder = new TextEncoder();
// Outcomes are a bare word, no headers to encode.
const OUTCOMES = { started: encoder.encode('started'), done: encoder.encode('done') };
