import { GatewayError, nowMs, toGatewayError, type InferenceCompleted } from '@homelab/bus';
import {
  chatChunkHasContent, completionChunkHasContent, usageFacts, type AnswerFacts, type ChatChunk, type Completion, type Dialect, type InternalAnswers,
} from '@homelab/dialects';
import type { Logger } from '@homelab/logging';
import { readAll } from '../http/origin.ts';
import { BackendStatusError } from '../http/status.ts';
import { completeInternal, refuseFillInTheMiddle, streamInternal, type InternalCall, type InternalStreamStats } from '../internal.ts';
import type { Backend, BackendCall } from '../types.ts';
import { AnswerChannel, type Publish } from './answer-channel.ts';
import { completedEvent, type WorkerOutcome } from './completion-event.ts';
import type { WorkerEnvelope } from './envelope.ts';
import { ResponsesTurn, type ResponsesStore } from './responses.ts';
import type { WorkerSpans } from './spans.ts';

/** What one request needs from its worker: plain functions, so a unit test can give fakes. */
export interface WorkerRequestDeps {
  backend: Backend;
  /** Publishes to the requester. */
  publish: Publish;
  /** Tells the router how the answer goes: `started` once a stream is committed, `done` at the end. */
  outcome(word: 'started' | 'done'): void;
  /** A failure before any content: the router decides what follows (another try, another backend, the error). */
  reportFailure(error: GatewayError): void;
  emit(event: InferenceCompleted): void;
  /** Called on every message to the requester (the keepalive timer). */
  touch(): void;
  /** Aborted by a cancel from the requester, the total timeout, or a lost bus connection (its reason says which). */
  signal: AbortSignal;
  /** Longest silence between two pieces of the backend's answer, and longest answer. */
  timeouts: { idleTimeoutMs: number; totalTimeoutMs: number };
  spans?: WorkerSpans | undefined;
  log: Logger;
  /** The Responses API's stored responses (`previous_response_id`, `store`); absent: none kept. */
  responses?: ResponsesStore | undefined;
}

const decoder = new TextDecoder();

/**
 * One request at a worker, from the router's envelope to the `inference.completed` event.
 *
 * Where the backend speaks the client's dialect, the client's bytes go to the backend with only the
 * model set (and the usage the gateway must ask for), and the backend's bytes come back unchanged:
 * the dialect's watch reads what the gateway needs on the way. Otherwise the request is translated
 * through the internal form: client dialect → internal → the backend's dialect, and back.
 */
export class WorkerRequest {
  readonly #envelope: WorkerEnvelope;
  readonly #body: Uint8Array;
  readonly #deps: WorkerRequestDeps;
  readonly #channel: AnswerChannel;
  #facts: AnswerFacts = {};
  #loadMs: number | undefined;
  #backendStart = 0;
  #ttftMs: number | undefined;
  /** A Responses request with a store: the conversation it continues, and the keeping of its answer. */
  #turn: ResponsesTurn | undefined;

  constructor(envelope: WorkerEnvelope, body: Uint8Array, deps: WorkerRequestDeps) {
    this.#envelope = envelope;
    this.#body = body;
    this.#deps = deps;
    this.#channel = new AnswerChannel(deps.publish, envelope, deps.backend.provider, deps.touch);
  }

  get #provider(): string {
    return this.#deps.backend.provider;
  }

  async run(): Promise<void> {
    try {
      this.#turn = await this.#responsesTurn();
      this.#backendStart = nowMs();
      if (this.#deps.backend.dialects.has(this.#envelope.dialect.name)) await this.#passThrough();
      else await this.#translate();
    } catch (err) {
      this.#failed(this.#reasonFor(err));
    }
  }

  /** A Responses request, when the worker keeps responses: reads the conversation it continues. */
  async #responsesTurn(): Promise<ResponsesTurn | undefined> {
    const store = this.#deps.responses;
    if (!store || this.#envelope.dialect.name !== 'openai.responses') return undefined;
    return ResponsesTurn.open(this.#body, store, this.#envelope.keyName ?? '', this.#provider);
  }

  // --- pass-through: the backend speaks the client's dialect ---

  async #passThrough(): Promise<void> {
    const dialect = this.#envelope.dialect;
    const source = this.#turn?.passThroughBytes() ?? this.#body;
    const body = need(dialect, 'passThrough')(source, { model: this.#envelope.model, stream: this.#envelope.stream, ...this.#defaults() });
    const answer = await this.#deps.backend.send(this.#call(dialect.name, body)).catch((err: unknown) => {
      // A dialect whose errors are only a status and a text (Ollama's): the backend's own reach its client unchanged.
      throw dialect.backendErrorsVerbatim && err instanceof BackendStatusError ? err.verbatim() : err;
    });
    if (!this.#envelope.stream) {
      const bytes = await readAll(answer.body);
      this.#facts = need(dialect, 'readAnswer')(bytes);
      this.#loadMs = this.#facts.loadMs;
      if (this.#turn?.stores) await this.#turn.keep(parseAnswer(bytes));
      return this.#answered(bytes);
    }
    const watch = need(dialect, 'watch')({ includeUsage: this.#envelope.includeUsage });
    for await (const piece of answer.body) {
      const out = watch.push(piece);
      // An error event before any content is a failure the router may still route around.
      if (watch.error && !watch.hasContent) throw watch.error;
      // The Response is kept before its terminal event reaches the client.
      if (watch.complete && !watch.error) await this.#turn?.keep(watch.response);
      if (out) this.#stream(out, watch.hasContent);
      if (watch.error) break;
    }
    const tail = watch.flush();
    if (tail) this.#stream(tail, watch.hasContent);
    this.#facts = watch.facts;
    this.#loadMs = watch.facts.loadMs;
    if (watch.error && !watch.hasContent) throw watch.error;
    if (!watch.error && !watch.complete) throw this.#incomplete();
    if (watch.error) throw watch.error;
    this.#streamEnded('');
  }

  // --- translation through the internal form ---

  async #translate(): Promise<void> {
    const dialect = this.#envelope.dialect;
    const clientBody = JSON.parse(decoder.decode(this.#body)) as Record<string, unknown>;
    // What the dialect's own backend answers without a model run (Ollama's load and unload requests).
    const shortcut = dialect.shortcut?.(clientBody);
    if (shortcut !== undefined) return this.#answered(shortcut);
    // A continued conversation is translated whole; the answer echoes the client's own body.
    const internal = need(dialect, 'requestToInternal')(this.#turn ? this.#turn.translationBody(clientBody) : clientBody);
    refuseFillInTheMiddle(this.#deps.backend, internal);
    const call = this.#internalCall();
    const stats: InternalStreamStats = {};
    if (!this.#envelope.stream) {
      const answer = await completeInternal(this.#deps.backend, internal, call, stats);
      this.#loadMs = stats.loadMs;
      this.#facts = factsOfAnswer(answer);
      const text = need(dialect, 'answerFromInternal')(answer, call.context, clientBody);
      if (this.#turn?.stores) await this.#turn.keep(JSON.parse(text) as object);
      return this.#answered(text);
    }
    const clientStream = need(dialect, 'createEncoder')(call.context, clientBody);
    const hasContent = internal.form === 'completion' ? completionChunkHasContent : chatChunkHasContent;
    let committed = false;
    try {
      for await (const chunks of streamInternal(this.#deps.backend, internal, call, stats)) {
        let text = '';
        for (const chunk of chunks) {
          this.#observe(chunk);
          committed ||= hasContent(chunk);
          text += clientStream.push(chunk);
        }
        if (text) this.#stream(text, committed);
      }
    } catch (err) {
      if (!this.#channel.committed) throw err;
      const error = this.#reasonFor(err);
      return this.#endFailed(error, error.code === 'cancelled' ? '' : clientStream.fail(error));
    } finally {
      this.#loadMs = stats.loadMs;
    }
    const closing = clientStream.end();
    await this.#turn?.keep(clientStream.response);
    this.#streamEnded(closing);
  }

  #observe(chunk: ChatChunk | Completion): void {
    if (chunk.model) this.#facts.responseModel ??= chunk.model;
    const finish = chunk.choices[0]?.finish_reason;
    if (finish) this.#facts.finishReason = finish;
    if (chunk.usage) Object.assign(this.#facts, usageFacts(chunk.usage));
  }

  // --- the answer's way out ---

  #answered(bytes: Uint8Array | string): void {
    const backendMs = nowMs() - this.#backendStart;
    this.#channel.single(bytes, backendMs);
    this.#deps.outcome('done');
    this.#finish({ status: 'ok', httpStatus: 200, backendMs, ttftMs: backendMs, facts: this.#facts });
  }

  #stream(bytes: Uint8Array | string, commit: boolean): void {
    if (this.#channel.data(bytes, commit, () => this.#firstToken())) this.#deps.outcome('started');
  }

  #firstToken(): number {
    this.#ttftMs ??= nowMs() - this.#backendStart;
    return this.#ttftMs;
  }

  #streamEnded(closing: string): void {
    // An answer with no content at all (an empty reply) is committed at its end.
    if (!this.#channel.committed) this.#stream('', true);
    const backendMs = nowMs() - this.#backendStart;
    this.#channel.end(closing, backendMs);
    this.#deps.outcome('done');
    this.#finish({ status: 'ok', httpStatus: 200, backendMs, ...this.#timing(), facts: this.#facts });
  }

  /** A failure after content reached the client: the answer is cut, with the dialect's error at its end. */
  #endFailed(error: GatewayError, errorBytes: string): void {
    if (error.code !== 'cancelled') this.#channel.fail(errorBytes, error);
    this.#deps.outcome('done');
    this.#finish({
      status: error.code === 'cancelled' ? 'cancelled' : 'error', httpStatus: error.status, errorType: error.code, truncated: true,
      backendMs: nowMs() - this.#backendStart, ...this.#timing(), facts: this.#facts,
    });
    if (error.code !== 'cancelled') this.#deps.log.warn({ requestId: this.#envelope.requestId, err: error.message }, 'stream cut after content was sent');
  }

  #failed(error: GatewayError): void {
    if (this.#channel.committed) {
      const bytes = error.code === 'cancelled' ? '' : (this.#envelope.dialect.streamError?.(error) ?? '');
      return this.#endFailed(error, bytes);
    }
    if (error.code === 'internal_error') this.#deps.log.error({ requestId: this.#envelope.requestId, err: error.cause ?? error }, 'worker failed');
    this.#deps.spans?.fail(error);
    this.#deps.reportFailure(error);
  }

  #finish(outcome: WorkerOutcome): void {
    const event = completedEvent(this.#envelope, this.#deps.backend.provider, { ...outcome, ...(this.#loadMs !== undefined && { loadMs: this.#loadMs }) });
    this.#deps.spans?.finish(event);
    this.#deps.emit(event);
  }

  // --- helpers ---

  #call(dialect: BackendCall['dialect'], body: Uint8Array): BackendCall {
    return {
      dialect, body, stream: this.#envelope.stream, signal: this.#deps.signal, headers: this.#envelope.forwardedHeaders, requestId: this.#envelope.requestId,
      headersTimeoutMs: this.#deps.timeouts.totalTimeoutMs, bodyTimeoutMs: this.#deps.timeouts.idleTimeoutMs,
    };
  }

  #defaults(): { defaults?: Record<string, unknown> } {
    const defaults = this.#deps.backend.defaults;
    return defaults ? { defaults: { ...defaults } } : {};
  }

  #internalCall(): InternalCall {
    const e = this.#envelope;
    return {
      context: {
        requestId: e.requestId, model: e.model, requestedModel: e.requestedModel, created: Math.floor(Date.now() / 1000), includeUsage: e.includeUsage,
        ...(this.#turn && { responseId: this.#turn.responseId }),
      },
      signal: this.#deps.signal, headers: e.forwardedHeaders, requestId: e.requestId,
      headersTimeoutMs: this.#deps.timeouts.totalTimeoutMs, bodyTimeoutMs: this.#deps.timeouts.idleTimeoutMs,
    };
  }

  #timing(): { ttftMs?: number } {
    return this.#ttftMs === undefined ? {} : { ttftMs: this.#ttftMs };
  }

  #incomplete(): GatewayError {
    return new GatewayError('backend_error', `${this.#provider} ended the stream before the answer was complete`);
  }

  /** An aborted request fails with the abort's reason (cancel, timeout, lost bus), whatever the read threw. */
  #reasonFor(err: unknown): GatewayError {
    const reason: unknown = this.#deps.signal.aborted ? this.#deps.signal.reason : undefined;
    if (reason instanceof GatewayError) return reason;
    if (err instanceof SyntaxError) return new GatewayError('backend_error', `${this.#provider} sent a malformed answer`, { cause: err });
    return toGatewayError(err, 'backend_error');
  }
}

/** A dialect's part that the request needs: its absence is a bug of the dialect table, not the client's fault. */
function need<D extends Dialect, K extends keyof D>(dialect: D, part: K): NonNullable<D[K]> {
  const value = dialect[part];
  if (!value) throw new GatewayError('internal_error', `dialect ${dialect.name} has no ${String(part)}`);
  return (typeof value === 'function' ? value.bind(dialect) : value) as NonNullable<D[K]>;
}

/** A whole answer as JSON, for the response store; undefined when it is not JSON (nothing to keep). */
function parseAnswer(bytes: Uint8Array): object | undefined {
  try {
    const value: unknown = JSON.parse(decoder.decode(bytes));
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

function factsOfAnswer(answer: InternalAnswers[keyof InternalAnswers]): AnswerFacts {
  const facts: AnswerFacts = { ...(answer.model && { responseModel: answer.model }) };
  if ('choices' in answer) {
    const finish = answer.choices[0]?.finish_reason;
    if (finish) facts.finishReason = finish;
  }
  if (answer.usage) Object.assign(facts, 'completion_tokens' in answer.usage ? usageFacts(answer.usage) : { inputTokens: answer.usage.prompt_tokens });
  return facts;
}
