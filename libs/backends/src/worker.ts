import type { Msg, NatsConnection } from '@nats-io/transport-node';
import {
  GatewayError, H, KeepaliveSender, ReplyMux, Subjects, inboxPrefixOf, waitUntilIdle, createHeaders, errorHeaders, nowMs, respondJson, toGatewayError, traceIdOf, workerSubject,
  type EventPublisher, type InferenceCompleted, type MicroService, type MsgHeaders, type WorkerModels,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import { HomelabSpanAttr, genAiAttributes, genAiSpanName, type Tracing } from '@homelab/tracing';
import type { Backend, ChatChunk, ChatCompletion, ChatRequest, ChatStreamStats, EmbeddingsRequest } from './types.ts';

export interface WorkerTimeouts {
  /** Longest silence between two chunks once the answer is flowing. */
  idleTimeoutMs: number;
  /** Longest a whole answer may take. */
  totalTimeoutMs: number;
}

export interface ServeBackendOptions {
  /** A span per request and one around the backend call, when tracing is on. */
  tracing?: Tracing;
  /** The backend's origin, for the client span's `server.address` / `server.port`. */
  backendUrl?: string;
  nc: NatsConnection;
  log: Logger;
  service: MicroService;
  events: EventPublisher;
  backend: Backend;
  timeouts: WorkerTimeouts;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface InFlight { attempt: string; controller: AbortController }

/**
 * Serves one backend on `worker.<provider>.{chat,embeddings,models}` (queue group per provider).
 *
 * A chat request comes from the router with the requester's reply subject in `Homelab-Reply-To`:
 * the worker streams the answer straight there, and tells the router on the request's own reply
 * subject how it went: `started` once content reached the requester (from then on the router
 * never switches backend), `done`, or `failed` with the error (the router may try elsewhere).
 */
export function serveBackend(options: ServeBackendOptions): { inFlight(): number; stop(graceMs?: number): Promise<void> } {
  const { nc, log, service, backend } = options;
  const provider = backend.provider;
  const inFlight = new Map<string, InFlight>();
  const queue = `worker-${provider}`;
  // The connection's own inbox prefix: nats.conf lets each service read only its own inboxes.
  const mux = new ReplyMux(nc, inboxPrefixOf(nc));

  const cancelSub = nc.subscribe(Subjects.cancel.subject, {
    callback: (_err, msg) => {
      const id = msg.headers?.get(H.requestId);
      const entry = id ? inFlight.get(id) : undefined;
      if (!entry) return;
      const attempt = msg.headers?.get(H.attempt);
      if (!attempt || attempt === entry.attempt) entry.controller.abort(new GatewayError('cancelled', 'request cancelled'));
    },
  });

  // While the backend thinks (a cold load, a slow first token), the requester hears the worker is alive.
  const keepalive = new KeepaliveSender((replyTo, headers) => nc.publish(replyTo, undefined, { headers }));

  const track = (msg: Msg, replyTo: string): { requestId: string; attempt: string; controller: AbortController; sent(): void; done(): void } => {
    const requestId = msg.headers?.get(H.requestId) || 'unknown';
    const attempt = msg.headers?.get(H.attempt) || '1';
    const controller = new AbortController();
    inFlight.set(requestId, { attempt, controller });
    const held = keepalive.hold(replyTo);
    const total = setTimeout(() => controller.abort(new GatewayError('timeout', `${provider} took longer than ${options.timeouts.totalTimeoutMs} ms in total`)), options.timeouts.totalTimeoutMs);
    return {
      requestId, attempt, controller, sent: held.touch,
      done: () => { clearTimeout(total); held.release(); if (inFlight.get(requestId)?.controller === controller) inFlight.delete(requestId); },
    };
  };

  service.addEndpoint(`${provider}-chat`, {
    subject: workerSubject(provider, 'chat'), queue, schema: null,
    // Requests this worker is answering now (telemetry reads it from $SRV.STATS).
    statsData: () => ({ in_flight: inFlight.size }),
    handler: ({ msg }) => handleChat(msg),
  });
  service.addEndpoint(`${provider}-embeddings`, {
    subject: workerSubject(provider, 'embeddings'), queue, schema: null,
    handler: ({ msg }) => handleEmbeddings(msg),
  });
  service.addEndpoint(`${provider}-models`, {
    subject: workerSubject(provider, 'models'), queue, schema: null,
    handler: async ({ msg }) => {
      const models = await backend.listModels(AbortSignal.timeout(5000));
      const reply: WorkerModels = { provider, models: models.map((m) => ({ id: m.id, ...(m.created !== undefined && { created: m.created }), ...(m.loaded !== undefined && { loaded: m.loaded }) })) };
      respondJson(msg, reply);
    },
  });

  /** The router's envelope: who to answer and which model; the body itself was validated by the router. */
  function envelope(msg: Msg): { replyTo: string; model: string; headers: MsgHeaders } {
    const headers = msg.headers;
    const replyTo = headers?.get(H.replyTo);
    const model = headers?.get(H.upstreamModel);
    if (!headers || !replyTo || !model) throw new GatewayError('invalid_request', `worker request without ${H.replyTo} / ${H.upstreamModel}: only the router sends here`);
    return { replyTo, model, headers };
  }

  async function handleChat(msg: Msg): Promise<void> {
    const receivedAt = nowMs();
    const { replyTo, model, headers } = envelope(msg);
    const request = JSON.parse(decoder.decode(msg.data)) as ChatRequest & Record<string, unknown>;
    const clientWantsUsage = request.stream === true && request.stream_options?.include_usage === true;
    request.model = model;
    const t = track(msg, replyTo);
    const stats: ChatStreamStats = {};
    const spans = startSpans('chat', headers, model, t.requestId);
    const answerHeaders = (): MsgHeaders => {
      const h = createHeaders();
      h.set(H.backend, provider);
      h.set(H.model, model);
      h.set(H.attempt, t.attempt);
      h.set(H.routeReason, headers.get(H.routeReason));
      h.set(H.requestId, t.requestId);
      return h;
    };
    const event = (partial: Partial<InferenceCompleted> & Pick<InferenceCompleted, 'status' | 'httpStatus'>): void => {
      const routerReceivedAt = Number(headers.get(H.receivedAt)) || receivedAt;
      const latencyMs = nowMs() - routerReceivedAt;
      const payload: InferenceCompleted = {
        requestId: t.requestId, operation: 'chat', stream: request.stream === true,
        requestedModel: headers.get(H.requestedModel) || model, model, backend: provider,
        attempts: Number(t.attempt), routeReason: headers.get(H.routeReason) || '', latencyMs,
        ...(traceIdOf(headers.get(H.traceparent)) && { traceId: traceIdOf(headers.get(H.traceparent))! }),
        ...(stats.loadMs !== undefined && { loadMs: stats.loadMs }),
        ...(headers.get(H.apiKey) && { apiKey: headers.get(H.apiKey) }),
        finishedAt: new Date().toISOString(), ...partial,
      };
      if (payload.backendMs !== undefined) payload.overheadMs = Math.max(0, latencyMs - payload.backendMs);
      spans?.finish(payload);
      options.events.publish('inferenceCompleted', payload, { msgId: `${t.requestId}:${t.attempt}` }).catch((err: unknown) => {
        log.warn({ requestId: t.requestId, err: (err as Error).message }, 'could not store inference.completed');
      });
    };

    const backendStart = nowMs();
    try {
      if (request.stream !== true) {
        const completion: ChatCompletion = await backend.chat({ request, requestId: t.requestId, signal: t.controller.signal }, stats);
        const backendMs = nowMs() - backendStart;
        const h = answerHeaders();
        h.set(H.backendMs, backendMs.toFixed(3));
        nc.publish(replyTo, encoder.encode(JSON.stringify(completion)), { headers: h });
        outcome(msg, 'done');
        event({
          status: 'ok', httpStatus: 200, backendMs, ttftMs: backendMs, responseModel: completion.model,
          ...usageFields(completion.usage), ...(completion.choices[0]?.finish_reason && { finishReason: completion.choices[0].finish_reason }),
        });
        return;
      }
      await streamChat();
    } catch (err) {
      const error = toGatewayError(err, 'backend_error');
      failBeforeContent(error);
    } finally {
      t.done();
    }

    // Chunks without content (the role-only opener) are held back until content comes: if the backend
    // fails before that, the router can still try elsewhere without the client seeing two openers.
    async function streamChat(): Promise<void> {
      let held: ChatChunk[] = [];
      let started = false;
      let ttftMs: number | undefined;
      let lastChunkAt = nowMs();
      let finishReason: string | undefined;
      let usage: ChatChunk['usage'] | undefined;
      let responseModel: string | undefined;
      let receiving = false;
      // Silence between chunks; the wait for the first one (a cold load) is the router's first-token timeout.
      const idle = setInterval(() => {
        if (receiving && nowMs() - lastChunkAt > options.timeouts.idleTimeoutMs) t.controller.abort(new GatewayError('timeout', `${provider} sent nothing for ${options.timeouts.idleTimeoutMs} ms`));
      }, Math.min(1000, options.timeouts.idleTimeoutMs));
      try {
        for await (const chunk of backend.chatStream({ request, requestId: t.requestId, signal: t.controller.signal }, stats)) {
          lastChunkAt = nowMs();
          receiving = true;
          responseModel ??= chunk.model;
          if (chunk.usage) usage = chunk.usage;
          const choice = chunk.choices[0];
          if (choice?.finish_reason) finishReason = choice.finish_reason;
          // OpenAI sends the usage chunk only when asked; we always ask upstream for our own accounting.
          if (chunk.choices.length === 0 && chunk.usage && !clientWantsUsage) continue;
          if (!started) {
            const delta = choice?.delta as (ChatChunk['choices'][number]['delta'] & { reasoning_content?: string }) | undefined;
            const hasContent = !!(delta?.content || delta?.tool_calls?.length || delta?.reasoning_content || choice?.finish_reason);
            if (!hasContent) { held.push(chunk); continue; }
            started = true;
            ttftMs = lastChunkAt - backendStart;
            const first = answerHeaders();
            first.set(H.stream, 'chunk');
            first.set(H.backendMs, ttftMs.toFixed(3));
            for (const h of held) nc.publish(replyTo, encoder.encode(JSON.stringify(h)), { headers: first });
            held = [];
            nc.publish(replyTo, encoder.encode(JSON.stringify(chunk)), { headers: first });
            t.sent();
            outcome(msg, 'started');
            continue;
          }
          nc.publish(replyTo, encoder.encode(JSON.stringify(chunk)), { headers: chunkHeaders });
          t.sent();
        }
        if (!started) {
          // A stream that ended without any content: flush what was held so the client gets a well-formed answer.
          const first = answerHeaders();
          first.set(H.stream, 'chunk');
          for (const h of held) nc.publish(replyTo, encoder.encode(JSON.stringify(h)), { headers: first });
          outcome(msg, 'started');
          started = true;
        }
        const backendMs = nowMs() - backendStart;
        const end = createHeaders();
        end.set(H.stream, 'end');
        end.set(H.backendMs, backendMs.toFixed(3));
        nc.publish(replyTo, undefined, { headers: end });
        outcome(msg, 'done');
        event({
          status: 'ok', httpStatus: 200, backendMs, ...(ttftMs !== undefined && { ttftMs }), ...(responseModel && { responseModel }),
          ...usageFields(usage), ...(finishReason && { finishReason }),
        });
      } catch (err) {
        const error = toGatewayError(t.controller.signal.reason ?? err, 'backend_error');
        if (!started) throw error;
        // Content already reached the client: never switch backend, end the stream with an explicit error.
        const h = errorHeaders(error);
        nc.publish(replyTo, encoder.encode(JSON.stringify(error.toOpenAI())), { headers: h });
        outcome(msg, 'done');
        event({ status: 'error', httpStatus: error.status, errorType: error.code, truncated: true, backendMs: nowMs() - backendStart, ...(ttftMs !== undefined && { ttftMs }), ...usageFields(usage) });
        if (error.code !== 'cancelled') log.warn({ requestId: t.requestId, err: error.message }, 'stream cut after content was sent');
      } finally {
        clearInterval(idle);
      }
    }

    function failBeforeContent(error: GatewayError): void {
      const reason = t.controller.signal.reason;
      const final = reason instanceof GatewayError ? reason : error;
      if (final.code === 'internal_error') log.error({ requestId: t.requestId, err: error.cause ?? error }, 'worker failed');
      spans?.fail(final);
      reportFailure(msg, replyTo, final);
    }
  }

  async function handleEmbeddings(msg: Msg): Promise<void> {
    const { replyTo, model, headers } = envelope(msg);
    const request = JSON.parse(decoder.decode(msg.data)) as EmbeddingsRequest;
    request.model = model;
    const t = track(msg, replyTo);
    const start = nowMs();
    try {
      const response = await backend.embed({ request, requestId: t.requestId, signal: t.controller.signal });
      const backendMs = nowMs() - start;
      const h = createHeaders();
      h.set(H.backend, provider);
      h.set(H.model, model);
      h.set(H.backendMs, backendMs.toFixed(3));
      nc.publish(replyTo, encoder.encode(JSON.stringify(response)), { headers: h });
      outcome(msg, 'done');
      const routerReceivedAt = Number(headers.get(H.receivedAt)) || start;
      const latencyMs = nowMs() - routerReceivedAt;
      options.events.publish('inferenceCompleted', {
        requestId: t.requestId, operation: 'embeddings', stream: false, requestedModel: headers.get(H.requestedModel) || model, model,
        responseModel: response.model, backend: provider, status: 'ok', httpStatus: 200, attempts: Number(t.attempt),
        routeReason: headers.get(H.routeReason) || '', latencyMs, backendMs, overheadMs: Math.max(0, latencyMs - backendMs),
        inputTokens: response.usage?.prompt_tokens ?? 0, finishedAt: new Date().toISOString(),
        ...(headers.get(H.apiKey) && { apiKey: headers.get(H.apiKey) }),
      }, { msgId: `${t.requestId}:${t.attempt}` }).catch(() => {});
    } catch (err) {
      reportFailure(msg, replyTo, toGatewayError(t.controller.signal.reason ?? err, 'backend_error'));
    } finally {
      t.done();
    }
  }

  /**
   * When tracing is on: a `server` span for the worker's part (child of the router's), and a
   * `client` span around the backend call. Off, nothing is built.
   */
  function startSpans(operation: 'chat' | 'embeddings', headers: MsgHeaders, model: string, requestId: string): { finish(e: Partial<InferenceCompleted>): void; fail(e: GatewayError): void } | undefined {
    const tracing = options.tracing;
    if (!tracing?.enabled) return undefined;
    const server = tracing.startHop(`${operation} ${provider} worker`, { traceparent: headers.get(H.traceparent), kind: 'server', attributes: { [HomelabSpanAttr.requestId]: requestId } });
    const origin = options.backendUrl ? new URL(options.backendUrl) : undefined;
    const client = tracing.startHop(genAiSpanName(operation, model), {
      traceparent: server.traceparent, kind: 'client',
      attributes: genAiAttributes({ operation, provider, requestModel: model, ...(origin && { serverAddress: origin.hostname, serverPort: Number(origin.port) || (origin.protocol === 'https:' ? 443 : 80) }) }),
    });
    return {
      finish(e) {
        client.setAttributes(genAiAttributes({
          operation, ...(e.responseModel && { responseModel: e.responseModel }), ...(e.inputTokens !== undefined && { inputTokens: e.inputTokens }),
          ...(e.outputTokens !== undefined && { outputTokens: e.outputTokens }), ...(e.finishReason && { finishReasons: [e.finishReason] }),
        }));
        if (e.status === 'error') client.fail(new Error(e.errorType ?? 'error'), e.errorType);
        client.end();
        server.end();
      },
      fail(e) { client.fail(e, e.code).end(); server.fail(e, e.code).end(); },
    };
  }

  /**
   * The router decides what follows a failure before content (retry, fallback, or the error to the
   * client), and acknowledges the report. No acknowledgement means the router is gone: then the
   * requester gets the error straight away instead of waiting for its timeout.
   */
  function reportFailure(msg: Msg, replyTo: string, error: GatewayError): void {
    if (!msg.reply) return;
    const body = encoder.encode(JSON.stringify(error.toOpenAI()));
    mux.request(nc, msg.reply, body, { headers: errorHeaders(error), timeoutMs: 2000 }).catch(() => {
      if (error.code !== 'cancelled') nc.publish(replyTo, body, { headers: errorHeaders(error) });
    });
  }

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
      cancelSub.unsubscribe();
      keepalive.stop();
      mux.close();
    },
  };
}

const chunkHeaders = (() => { const h = createHeaders(); h.set(H.stream, 'chunk'); return h; })();

// Success outcomes are a bare word, no headers to encode; a failure carries the service error headers.
const OUTCOMES = { started: encoder.encode('started'), done: encoder.encode('done') };
function outcome(msg: Msg, value: 'started' | 'done'): void {
  msg.respond(OUTCOMES[value]);
}

function usageFields(usage: ChatCompletion['usage'] | null | undefined): Pick<InferenceCompleted, 'inputTokens' | 'outputTokens' | 'cachedTokens'> {
  if (!usage) return {};
  return {
    inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens,
    ...(usage.prompt_tokens_details?.cached_tokens && { cachedTokens: usage.prompt_tokens_details.cached_tokens }),
  };
}
