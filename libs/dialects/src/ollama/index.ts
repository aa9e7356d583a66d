import { Type } from '@sinclair/typebox';
import { GatewayError } from '@homelab/bus';
import { RecordSplitter } from '../framing.ts';
import type { ChatChunk, Dialect, DialectError, EmbeddingsRequest, StreamDecoder, TranslationContext } from '../types.ts';
import {
  OllamaChatStream, fromOllamaChatResponse, fromOllamaEmbedResponse, ollamaLoadMs, toOllamaChatRequest, toOllamaEmbedRequest,
  type OllamaChatResponse, type OllamaEmbedResponse, type OllamaKeepAlive,
} from './chat-backend.ts';

export * from './chat-backend.ts';

// The backend side of the Ollama API dialects (an OpenAI client served by Ollama). The client side
// (an Ollama client) is built in this folder next.

/** Ollama's error body: `{"error":"…"}`. */
export function ollamaError(error: GatewayError): DialectError {
  return { status: error.status, body: JSON.stringify({ error: error.message }) };
}

/** Ollama's NDJSON stream as internal chat chunks. */
class OllamaChatDecoder implements StreamDecoder<ChatChunk> {
  readonly #splitter = new RecordSplitter('ndjson');
  readonly #translator: OllamaChatStream;

  constructor(context: TranslationContext) {
    this.#translator = new OllamaChatStream(context.model);
  }

  get complete(): boolean {
    return this.#translator.done;
  }

  get loadMs(): number | undefined {
    return this.#translator.loadMs;
  }

  push(bytes: Uint8Array): ChatChunk[] {
    const cut = this.#splitter.push(bytes);
    if (!cut) return [];
    const chunks: ChatChunk[] = [];
    for (const [start, end] of cut.records) {
      const line = cut.data.toString('utf8', start, end).trim();
      if (line === '') continue;
      let parsed: OllamaChatResponse;
      try {
        parsed = JSON.parse(line) as OllamaChatResponse;
      } catch {
        throw new GatewayError('backend_error', `ollama: malformed stream line: ${line.slice(0, 120)}`);
      }
      chunks.push(...this.#translator.push(parsed));
    }
    return chunks;
  }
}

const keepAliveOf = (defaults: Record<string, unknown> | undefined): OllamaKeepAlive | undefined => {
  const value = defaults?.['keep_alive'];
  return typeof value === 'string' || typeof value === 'number' ? value : undefined;
};

const OllamaBody = Type.Object({ model: Type.String({ minLength: 1 }), stream: Type.Optional(Type.Boolean()) }, { additionalProperties: true });

export const ollamaChat: Dialect<{ model: string; stream?: boolean }> = {
  name: 'ollama.chat',
  operation: 'generate',
  schema: OllamaBody,
  // Ollama streams unless told not to.
  routing: (body) => ({ model: body.model, stream: body.stream !== false }),
  error: ollamaError,
  streamError: (error) => `${JSON.stringify({ error: error.message })}\n`,
  framing: { contentType: 'application/x-ndjson' },
  requestFromInternal(internal, options) {
    if (internal.form !== 'chat') throw new TypeError(`ollama.chat carries chat requests, not ${internal.form}`);
    const keepAlive = keepAliveOf(options.defaults);
    return { ...toOllamaChatRequest({ ...internal.request, model: options.model }, keepAlive === undefined ? { stream: options.stream } : { stream: options.stream, keepAlive }) };
  },
  answerToInternal: (body, context) => fromOllamaChatResponse(body as OllamaChatResponse, context.model),
  loadMsOf: (body) => ollamaLoadMs(body as OllamaChatResponse),
  createDecoder: (context) => new OllamaChatDecoder(context),
};

export const ollamaEmbed: Dialect<{ model: string }> = {
  name: 'ollama.embed',
  operation: 'embed',
  schema: OllamaBody,
  routing: (body) => ({ model: body.model, stream: false }),
  error: ollamaError,
  requestFromInternal(internal, options) {
    if (internal.form !== 'embeddings') throw new TypeError(`ollama.embed carries embeddings, not ${internal.form}`);
    return { ...toOllamaEmbedRequest({ ...internal.request, model: options.model }, keepAliveOf(options.defaults)) };
  },
  answerToInternal: (body, context) => fromOllamaEmbedResponse(body as OllamaEmbedResponse, { model: context.model } as EmbeddingsRequest),
};
