import {
  CancelledRequests, GatewayError, H, KeepaliveSender, Subjects, errorHeaders, respondJson, toGatewayError, waitUntilIdle, workerSubject,
  type EventPublisher, type MicroService, type Msg, type MsgHeaders, type NatsConnection, type ReplyMux, type WorkerModels, type WorkerOperation,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import type { Tracing } from '@homelab/tracing';
import { operationName } from '@homelab/dialects';
import type { Backend } from '../types.ts';
import { countTokens } from './count-tokens.ts';
import { readEnvelope, type WorkerEnvelope } from './envelope.ts';
import { WorkerRequest } from './request.ts';
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

/**
 * Serves one backend on `worker.<provider>.{generate,embed,models}` (queue group per provider).
 *
 * A request comes from the router with the requester's reply subject in `Homelab-Reply-To`: the
 * worker streams the answer straight there (docs/subjects.md) and tells the router, on the
 * request's own reply subject, how it went: `started` once a stream is committed (from then on the
 * router never switches backend), `done`, or a failure before content (the router may try elsewhere).
 */
export function serveBackend(options: ServeBackendOptions): { inFlight(): number; stop(graceMs?: number): Promise<void> } {
  const { nc, log, service, backend, mux } = options;
  const provider = backend.provider;
  const inFlight = new Map<string, InFlight>();
  const cancelled = new CancelledRequests();
  const queue = `worker-${provider}`;

  const cancels = nc.subscribe(Subjects.cancel.subject, {
    callback: (_err, msg) => {
      const id = msg.headers?.get(H.requestId);
      if (!id) return;
      const attempt = Number(msg.headers?.get(H.attempt));
      // The requester's own cancel (no attempt) may arrive before the request it cancels.
      if (!attempt) cancelled.add(id);
      const entry = inFlight.get(id);
      if (entry && (!attempt || attempt === entry.attempt)) entry.controller.abort(new GatewayError('cancelled', 'request cancelled'));
    },
  });

  // While the backend thinks (a cold load, a slow first token), the requester hears the worker is alive.
  const keepalive = new KeepaliveSender((replyTo, headers) => nc.publish(replyTo, undefined, { headers }));
  const publish = (subject: string, body: Uint8Array | string, headers?: MsgHeaders): void => {
    if (headers) nc.publish(subject, body, { headers });
    else nc.publish(subject, body);
  };

  async function serve(msg: Msg): Promise<void> {
    const envelope = readEnvelope(msg);
    if (cancelled.has(envelope.requestId)) return reportFailure(msg, envelope, new GatewayError('cancelled', 'the requester went away before the request arrived'));
    const controller = new AbortController();
    if (envelope.dialect.operation === 'count_tokens') {
      return countTokens(envelope, msg.data, {
        backend, publish, signal: controller.signal, touch: () => {},
        outcome: (word) => msg.respond(OUTCOMES[word]), reportFailure: (error) => reportFailure(msg, envelope, error),
      });
    }
    inFlight.set(envelope.requestId, { attempt: envelope.attempt, controller });
    const held = keepalive.hold(envelope.replyTo);
    const total = setTimeout(() => controller.abort(new GatewayError('timeout', `${provider} took longer than ${options.timeouts.totalTimeoutMs} ms in total`)), options.timeouts.totalTimeoutMs);
    try {
      await new WorkerRequest(envelope, msg.data, {
        backend, publish, log, signal: controller.signal, timeouts: options.timeouts, touch: held.touch, responses: options.responses,
        spans: startWorkerSpans(options.tracing, envelope, provider, operationName(envelope.dialect), options.backendUrl),
        outcome: (word) => msg.respond(OUTCOMES[word]),
        reportFailure: (error) => reportFailure(msg, envelope, error),
        emit: (event) => options.events.emit('inferenceCompleted', event, { msgId: event.requestId }),
      }).run();
    } finally {
      clearTimeout(total);
      held.release();
      if (inFlight.get(envelope.requestId)?.controller === controller) inFlight.delete(envelope.requestId);
    }
  }

  /**
   * The router decides what follows a failure before content (retry, fallback, or the error to the
   * client) and acknowledges the report. No acknowledgement means the router is gone: then the
   * requester gets the error in its own dialect straight away instead of waiting for its timeout.
   */
  function reportFailure(msg: Msg, envelope: WorkerEnvelope, error: GatewayError): void {
    if (!msg.reply) return;
    mux.request(nc, msg.reply, encoder.encode(JSON.stringify(error.toOpenAI())), { headers: errorHeaders(error), timeoutMs: REPORT_ACK_MS }).catch(() => {
      if (error.code !== 'cancelled') nc.publish(envelope.replyTo, envelope.dialect.error(error).body, { headers: errorHeaders(error) });
    });
  }

  const endpoint = (operation: WorkerOperation, handler: (msg: Msg) => Promise<void>, statsData?: () => Record<string, unknown>): void => {
    service.addEndpoint(`${provider}-${operation}`, {
      subject: workerSubject(provider, operation), queue, schema: null, ...(statsData && { statsData }),
      handler: ({ msg }) => handler(msg),
    });
  };
  // Requests this worker is answering now (telemetry reads it from $SRV.STATS).
  endpoint('generate', serve, () => ({ in_flight: inFlight.size }));
  endpoint('embed', serve);
  endpoint('count_tokens', serve);
  endpoint('models', async (msg) => {
    const models = await backend.listModels(AbortSignal.timeout(5000)).catch((err: unknown) => { throw toGatewayError(err, 'backend_unavailable'); });
    const reply: WorkerModels = {
      provider,
      // The backend's own facts first: they never replace the id, created or loaded.
      models: models.map((m) => ({ ...m.facts, id: m.id, ...(m.created !== undefined && { created: m.created }), ...(m.loaded !== undefined && { loaded: m.loaded }) })),
    };
    respondJson(msg, reply);
  });

  // A lost bus connection: answers cannot reach anyone, so stop the backend work at once.
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type !== 'disconnect') continue;
      for (const entry of inFlight.values()) entry.controller.abort(new GatewayError('backend_unavailable', 'the worker lost its message bus connection'));
    }
  })();

  return {
    inFlight: () => inFlight.size,
    /** Called after the endpoints stopped taking requests: lets the answers in flight finish, then lets go. */
    async stop(graceMs = 25_000) {
      const finished = await waitUntilIdle(() => inFlight.size, graceMs);
      if (!finished) log.warn({ inFlight: inFlight.size }, 'answers still in flight at shutdown; cutting them');
      for (const entry of inFlight.values()) entry.controller.abort(new GatewayError('backend_unavailable', 'the worker is shutting down'));
      cancels.unsubscribe();
      keepalive.stop();
      await backend.close();
    },
  };
}

const encoder = new TextEncoder();
// Outcomes are a bare word, no headers to encode.
const OUTCOMES = { started: encoder.encode('started'), done: encoder.encode('done') };
