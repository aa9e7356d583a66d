import { GatewayError, toGatewayError } from '@homelab/bus';
import { RecordSplitter, decodeUntilFailure, parseSseEvent, sseEvent } from '../framing.ts';
import { keyMarker, scanValueAfterKey } from '../json-bytes.ts';
import { RecordWatch } from '../record-watch.ts';
import type { AnswerFacts, ChatChunk, ChatUsage, Completion, StreamDecoder, StreamEncoder, TranslationContext } from '../types.ts';

/*
 * OpenAI's streams (chat completions and text completions): SSE events `data: <chunk JSON>`, ended by
 * `data: [DONE]`. The last chunk before it carries `usage` with `choices: []` when the request asked
 * for `stream_options.include_usage`; the gateway always asks, for its own accounting.
 */

const DONE = Buffer.from('data: [DONE]');
const FINISH_REASON = keyMarker('finish_reason');
const USAGE = keyMarker('usage');
const CHOICES = keyMarker('choices');
const ERROR = keyMarker('error');
const MODEL = keyMarker('model');

/** An OpenAI chunk (chat or text completion) as the watcher reads it. */
interface OpenAIChunkLike {
  model?: string;
  choices?: { finish_reason?: string | null; text?: string; delta?: object }[];
  usage?: ChatUsage | null;
  error?: { message?: string; type?: string; code?: unknown };
}

/** Whether a chunk commits the answer: text, a tool call, reasoning, or a finish reason. */
export type HasContent = (chunk: OpenAIChunkLike) => boolean;

export const chatChunkHasContent: HasContent = (chunk) => {
  const choice = chunk.choices?.[0];
  if (!choice) return false;
  if (choice.finish_reason) return true;
  const delta = choice.delta as { content?: unknown; tool_calls?: unknown; reasoning_content?: unknown; reasoning?: unknown } | undefined;
  if (!delta) return false;
  return !!(delta.content || (Array.isArray(delta.tool_calls) && delta.tool_calls.length > 0) || delta.reasoning_content || delta.reasoning);
};

export const completionChunkHasContent: HasContent = (chunk) => {
  const choice = chunk.choices?.[0];
  return !!(choice && (choice.text || choice.finish_reason));
};

export function usageFacts(usage: ChatUsage): AnswerFacts {
  const cached = usage.prompt_tokens_details?.cached_tokens;
  return { inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens, ...(cached ? { cachedTokens: cached } : {}) };
}

/** A failure the backend wrote into its 200 stream (`data: {"error": {...}}`, as vLLM does). */
export function streamError(error: NonNullable<OpenAIChunkLike['error']>, provider = 'the backend'): GatewayError {
  return new GatewayError('backend_error', `${provider} failed mid-stream: ${String(error.message ?? error.type ?? 'unknown error').slice(0, 500)}`);
}

/**
 * Watches an OpenAI stream passing through. Until the first content it parses each chunk (a few
 * per answer); after that it only looks for the markers of what it needs (`finish_reason`, `usage`,
 * `error`) and parses the rare chunk that has one. The usage-only chunk is dropped when the client
 * did not ask for it.
 */
export class OpenAIStreamWatch extends RecordWatch {
  readonly #includeUsage: boolean;
  readonly #hasContent: HasContent;
  facts: AnswerFacts = {};

  constructor(options: { includeUsage: boolean; hasContent?: HasContent }) {
    super('sse');
    this.#includeUsage = options.includeUsage;
    this.#hasContent = options.hasContent ?? chatChunkHasContent;
  }

  /** Reads one event; false when it is the usage chunk the client did not ask for. */
  protected read(record: Buffer): boolean {
    if (record.indexOf(DONE) === 0) {
      this.complete = true;
      return true;
    }
    if (!this.hasContent || this.facts.responseModel === undefined || record.indexOf(USAGE) >= 0 || record.indexOf(ERROR) >= 0) {
      return this.#inspect(record);
    }
    const finish = scanValueAfterKey(record, FINISH_REASON);
    if (typeof finish === 'string') this.facts.finishReason = finish;
    return true;
  }

  #inspect(record: Buffer): boolean {
    const { data } = parseSseEvent(record);
    if (data === undefined) return true;
    let chunk: OpenAIChunkLike;
    try {
      chunk = JSON.parse(data) as OpenAIChunkLike;
    } catch {
      this.error ??= new GatewayError('backend_error', 'the backend sent a malformed stream event');
      return false;
    }
    if (chunk.error) {
      this.error ??= streamError(chunk.error);
      return false;
    }
    if (chunk.model) this.facts.responseModel ??= chunk.model;
    if (!this.hasContent && this.#hasContent(chunk)) this.hasContent = true;
    const finish = chunk.choices?.[0]?.finish_reason;
    if (finish) this.facts.finishReason = finish;
    if (chunk.usage) {
      Object.assign(this.facts, usageFacts(chunk.usage));
      if (chunk.choices?.length === 0 && !this.#includeUsage) return false;
    }
    return true;
  }
}

/** Reads an OpenAI stream from a backend as chunks (for a client of another dialect). */
export class OpenAIStreamDecoder<Chunk extends ChatChunk | Completion> implements StreamDecoder<Chunk> {
  readonly #splitter = new RecordSplitter('sse');
  readonly #provider: string;
  complete = false;
  error: GatewayError | undefined;

  constructor(provider = 'the backend') {
    this.#provider = provider;
  }

  push(bytes: Uint8Array): Chunk[] {
    const cut = this.error ? undefined : this.#splitter.push(bytes);
    if (!cut) return [];
    const records = cut.records.map(([start, end]) => cut.data.subarray(start, end));
    return decodeUntilFailure(records, (record) => this.#decode(record), (error) => { this.error = toGatewayError(error, 'backend_error'); });
  }

  #decode(record: Buffer): Chunk | undefined {
    const { data } = parseSseEvent(record);
    if (data === undefined) return undefined;
    if (data === '[DONE]') {
      this.complete = true;
      return undefined;
    }
    let chunk: Chunk & OpenAIChunkLike;
    try {
      chunk = JSON.parse(data) as Chunk & OpenAIChunkLike;
    } catch {
      throw new GatewayError('backend_error', `${this.#provider} sent a malformed stream event`);
    }
    if (chunk.error) throw streamError(chunk.error, this.#provider);
    return chunk;
  }
}

/** Writes chunks as OpenAI's stream: each as a `data:` event, then `[DONE]`. */
export class OpenAIStreamEncoder<Chunk extends ChatChunk | Completion> implements StreamEncoder<Chunk> {
  readonly #includeUsage: boolean;

  constructor(context: Pick<TranslationContext, 'includeUsage'>) {
    this.#includeUsage = context.includeUsage;
  }

  push(chunk: Chunk): string {
    // OpenAI sends the usage chunk only when it was asked for.
    if (chunk.choices.length === 0 && chunk.usage && !this.#includeUsage) return '';
    return sseEvent(JSON.stringify(chunk));
  }

  end(): string {
    return 'data: [DONE]\n\n';
  }

  fail(error: GatewayError): string {
    return sseEvent(JSON.stringify(error.toOpenAI()));
  }
}

/** The facts of a whole OpenAI answer (chat or text completion), read without parsing its choices. */
export function readOpenAIAnswer(bytes: Uint8Array): AnswerFacts {
  const facts: AnswerFacts = {};
  const model = scanValueAfterKey(bytes, MODEL);
  if (typeof model === 'string') facts.responseModel = model;
  const choices = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(CHOICES);
  const finish = scanValueAfterKey(bytes, FINISH_REASON, Math.max(0, choices));
  if (typeof finish === 'string') facts.finishReason = finish;
  const usage = scanValueAfterKey(bytes, USAGE);
  if (usage && usage.startsWith('{')) Object.assign(facts, usageFacts(JSON.parse(usage) as ChatUsage));
  return facts;
}
