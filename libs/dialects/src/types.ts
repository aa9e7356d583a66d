import type OpenAI from 'openai';
import type { TSchema } from '@sinclair/typebox';
import type { GatewayError } from '@homelab/bus';

/*
 * A dialect is one API shape that a client or a backend speaks: OpenAI chat completions, the
 * Anthropic Messages API, Ollama's /api/chat, … . Requests travel on the bus in the client's own
 * dialect, named in the `Homelab-Dialect` header; answers come back in it too.
 *
 * Where the backend speaks the client's dialect, the bytes pass through (only the model name and
 * what the gateway must ask for are changed). Otherwise the worker translates through one internal
 * form, OpenAI's chat completions (or text completions, or embeddings), in four directions that each
 * dialect folder implements where they apply:
 *
 *   client request  ──requestToInternal──▶ internal request ──requestFromInternal──▶ backend request
 *   client answer   ◀──StreamEncoder────── internal chunks  ◀──StreamDecoder──────── backend answer
 */

// --- The internal form: OpenAI's own types (type imports only; nothing of the SDK is loaded). ---
export type ChatRequest = OpenAI.Chat.Completions.ChatCompletionCreateParams;
export type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
export type ChatCompletion = OpenAI.Chat.Completions.ChatCompletion;
export type ChatChunk = OpenAI.Chat.Completions.ChatCompletionChunk;
export type ChatUsage = OpenAI.Completions.CompletionUsage;
/** A chunk's delta may carry reasoning text: vLLM and DeepSeek call it `reasoning_content`. */
export type ChunkDeltaWithReasoning = OpenAI.Chat.Completions.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string };
export type CompletionRequest = OpenAI.Completions.CompletionCreateParams;
export type Completion = OpenAI.Completions.Completion;
export type EmbeddingsRequest = OpenAI.EmbeddingCreateParams;
export type EmbeddingsResponse = OpenAI.CreateEmbeddingResponse;

/** Every dialect the gateway speaks, as named in `Homelab-Dialect` on the bus. */
export const DIALECT_NAMES = [
  'openai.chat', 'openai.completions', 'openai.responses', 'openai.embeddings',
  'anthropic.messages', 'anthropic.count_tokens',
  'ollama.chat', 'ollama.generate', 'ollama.embed', 'ollama.embeddings',
] as const;
export type DialectName = (typeof DIALECT_NAMES)[number];

export function isDialectName(value: unknown): value is DialectName {
  return typeof value === 'string' && (DIALECT_NAMES as readonly string[]).includes(value);
}

/** What a worker does for a dialect's request: `worker.<provider>.<operation>`. */
export type WorkerOperation = 'generate' | 'embed' | 'count_tokens';

/** The three internal forms. */
export type InternalForm = 'chat' | 'completion' | 'embeddings';

export type InternalRequest =
  | { form: 'chat'; request: ChatRequest }
  | { form: 'completion'; request: CompletionRequest }
  | { form: 'embeddings'; request: EmbeddingsRequest };

/** The chunk type of each streaming internal form. */
export interface InternalChunks { chat: ChatChunk; completion: Completion }
/** The whole answer of each internal form. */
export interface InternalAnswers { chat: ChatCompletion; completion: Completion; embeddings: EmbeddingsResponse }

/** What the router reads of a request to route it. */
export interface RoutingFacts {
  model: string;
  stream: boolean;
  /** The client asked for a usage event in its stream (OpenAI's `stream_options.include_usage`). */
  includeUsage?: boolean;
}

/** What the gateway learns of an answer, whatever its dialect: for the event, the budgets and the trace. */
export interface AnswerFacts {
  inputTokens?: number;
  outputTokens?: number;
  cachedTokens?: number;
  /** In the answer's own words (`stop`, `end_turn`, `length`, …). */
  finishReason?: string;
  /** The model the backend says answered. */
  responseModel?: string;
  /** How long the backend spent loading the model first (Ollama's `load_duration`), in ms. */
  loadMs?: number;
}

/** Facts of one request that translations need and the body does not carry. */
export interface TranslationContext {
  requestId: string;
  /** The backend's model id (alias and prefix resolved). */
  model: string;
  /** The model as the client asked for it (answers name it, so a client sees what it asked for). */
  requestedModel: string;
  /** Seconds since epoch, for the `created` fields. */
  created: number;
  /** The client asked for a usage event in its stream (OpenAI's `stream_options.include_usage`). */
  includeUsage: boolean;
  /**
   * The id of the answer where the gateway keeps answers by id (a Response's `resp_…`): unique per
   * answer, so it never depends on a request id the client chose. Default: derived from `requestId`.
   */
  responseId?: string;
}

/** How a dialect's streamed answer is framed on the wire. */
export interface StreamFraming {
  contentType: 'text/event-stream' | 'application/x-ndjson';
  /** Bytes a requester may send the client during a long silence (an SSE comment); none where every line must be JSON. */
  keepalive?: string;
}

/** An error in the dialect's own shape. */
export interface DialectError {
  status: number;
  body: string;
}

/**
 * Watches a backend's streamed answer in this dialect while its bytes pass through to the client
 * unchanged: it finds the event boundaries and reads only what the gateway needs.
 */
export interface StreamWatch {
  /** Takes bytes as they arrive; returns the complete events to forward now, or undefined. */
  push(bytes: Uint8Array): Uint8Array | undefined;
  /** At the end of the backend's body: whatever incomplete tail is left, or undefined. */
  flush(): Uint8Array | undefined;
  /** Content (text, a tool call, reasoning) was seen: from here on the answer is committed to this backend. */
  readonly hasContent: boolean;
  /** The dialect's terminal event was seen (`[DONE]`, `message_stop`, `done: true`, `response.completed`). */
  readonly complete: boolean;
  readonly facts: AnswerFacts;
  /**
   * An error the backend reported inside its 200 stream, or a malformed event. Neither is forwarded,
   * and nothing after it: the worker ends the stream with the error in the client's dialect (or, before
   * any content, the router tries elsewhere).
   */
  readonly error: GatewayError | undefined;
  /** The whole answer object the terminal event carried, where the dialect's has one (a Response, for the response store). */
  readonly response?: object | undefined;
}

/** Turns internal chunks into this dialect's stream, as text ready for the wire. */
export interface StreamEncoder<Chunk> {
  /** The bytes for one internal chunk ('' when it maps to nothing yet). */
  push(chunk: Chunk): string;
  /** The closing events after the last chunk. */
  end(): string;
  /** An error after content was sent, in the dialect's in-stream error form; ends the stream. */
  fail(error: GatewayError): string;
  /** After `end()`: the whole answer object the stream ended with, where the dialect has one (a Response, for the response store). */
  readonly response?: object | undefined;
}

/** Reads a backend's stream in this dialect as internal chunks. */
export interface StreamDecoder<Chunk> {
  /**
   * Takes bytes as they arrive; returns the internal chunks they complete. An error event or a
   * malformed record ends the stream: `error` says why, and push returns the chunks decoded before
   * it (content read together with an error is not lost), then nothing more.
   */
  push(bytes: Uint8Array): Chunk[];
  /** Why the stream ended badly, once it did. */
  readonly error: GatewayError | undefined;
  /** The terminal event was seen. */
  readonly complete: boolean;
  /** Facts the backend reported along the way (e.g. Ollama's load time). */
  readonly loadMs?: number | undefined;
}

/** Options of a pass-through request: what the worker must set in the client's bytes. */
export interface PassThroughOptions {
  /** The backend's model id. */
  model: string;
  stream: boolean;
  /** Fields the lab's config sets unless the client did (e.g. Ollama's `keep_alive`). */
  defaults?: Record<string, unknown>;
}

/**
 * One dialect. Every part but the first five is optional: a dialect implements the directions it
 * has (a client-only dialect has no `requestFromInternal`; a dialect no backend speaks has no `watch`).
 */
export interface Dialect<Body = unknown> {
  readonly name: DialectName;
  readonly operation: WorkerOperation;
  /** The request body as the router validates it; unknown fields are let through. */
  readonly schema: TSchema;
  /** What the router routes on, read from the validated body. */
  routing(body: Body): RoutingFacts;
  /** A gateway error in this dialect's shape and status code. */
  error(error: GatewayError): DialectError;
  /** An error after content was sent, in the dialect's in-stream form (it ends the stream). */
  streamError?(error: GatewayError): string;
  /** HTTP headers that go with an error answer in this dialect (Anthropic's `x-should-retry`, `retry-after-ms`). */
  errorHeaders?(error: GatewayError): Record<string, string>;
  /** How streamed answers are framed; absent for dialects that never stream. */
  readonly framing?: StreamFraming;
  /**
   * The dialect's error shape carries nothing but a status and a text (Ollama's `{"error":"…"}`):
   * a pass-through backend's own error then reaches the client with its status and text unchanged,
   * rather than as the gateway's error naming the backend.
   */
  readonly backendErrorsVerbatim?: boolean;
  /**
   * A request this dialect's own backend answers without running a model (Ollama: a chat without
   * messages or a generate without a prompt loads or unloads the model; an embed without input):
   * the answer the gateway gives itself when the backend does not speak the dialect, or undefined
   * for a real request.
   */
  shortcut?(body: Body): string | undefined;

  // --- client side: a client speaks this dialect, the backend does not ---
  /** The client's request in the internal form; throws GatewayError `invalid_request` for what cannot map. */
  requestToInternal?(body: Body): InternalRequest;
  /** A whole internal answer as this dialect's answer (JSON text); `body` is the client's request. */
  answerFromInternal?(answer: InternalAnswers[InternalForm], context: TranslationContext, body: Body): string;
  /** Internal chunks as this dialect's stream; `body` is the client's request. */
  createEncoder?(context: TranslationContext, body: Body): StreamEncoder<ChatChunk | Completion>;

  // --- backend side: the backend speaks this dialect ---
  /** The client's bytes made ready for a backend of this dialect (model, usage). */
  passThrough?(bytes: Uint8Array, options: PassThroughOptions): Uint8Array;
  /** Watches a streamed answer passing through. `includeUsage`: the client asked for a usage event itself. */
  watch?(options: { includeUsage: boolean }): StreamWatch;
  /** The facts of a whole answer passing through. */
  readAnswer?(bytes: Uint8Array): AnswerFacts;
  /** An internal request as this dialect's request body (for a backend that speaks it). */
  requestFromInternal?(request: InternalRequest, options: PassThroughOptions): Record<string, unknown>;
  /** A whole answer of a backend in this dialect, in the internal form. */
  answerToInternal?(body: unknown, context: TranslationContext): InternalAnswers[InternalForm];
  /** The model load time a whole answer reports, if the dialect has one (Ollama's `load_duration`). */
  loadMsOf?(body: unknown): number | undefined;
  /** Reads a backend's stream in this dialect as internal chunks. */
  createDecoder?(context: TranslationContext): StreamDecoder<ChatChunk | Completion>;
}
