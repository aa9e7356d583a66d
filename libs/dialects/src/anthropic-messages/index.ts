import { Type } from '@sinclair/typebox';
import { GatewayError } from '@homelab/bus';
import { RecordSplitter, parseSseEvent, SSE_KEEPALIVE } from '../framing.ts';
import type { ChatChunk, Dialect, DialectError, StreamDecoder } from '../types.ts';
import { AnthropicChatStream, fromAnthropicMessage, toAnthropicRequest, type AnthropicStreamEvent } from './backend.ts';

export * from './backend.ts';

// The backend side of the Anthropic Messages dialect (an OpenAI client served by Anthropic). The
// client side (an Anthropic client) is built in this folder next.

/** Anthropic's error body: `{"type":"error","error":{"type","message"}}`. */
export function anthropicError(error: GatewayError): DialectError {
  const type = error.status === 401 ? 'authentication_error' : error.status === 403 ? 'permission_error' : error.status === 404 ? 'not_found_error'
    : error.status === 413 ? 'request_too_large' : error.status === 429 ? 'rate_limit_error' : error.status >= 500 ? 'api_error' : 'invalid_request_error';
  return { status: error.status, body: JSON.stringify({ type: 'error', error: { type, message: error.message } }) };
}

/** Anthropic's stream as internal chat chunks. */
class AnthropicStreamDecoder implements StreamDecoder<ChatChunk> {
  readonly #splitter = new RecordSplitter('sse');
  readonly #translator = new AnthropicChatStream();

  get complete(): boolean {
    return this.#translator.done;
  }

  push(bytes: Uint8Array): ChatChunk[] {
    const cut = this.#splitter.push(bytes);
    if (!cut) return [];
    const chunks: ChatChunk[] = [];
    for (const [start, end] of cut.records) {
      const { data } = parseSseEvent(cut.data.subarray(start, end));
      if (data === undefined) continue;
      let event: AnthropicStreamEvent;
      try {
        event = JSON.parse(data) as AnthropicStreamEvent;
      } catch {
        throw new GatewayError('backend_error', 'anthropic sent a malformed stream event');
      }
      const chunk = this.#translator.push(event);
      if (chunk) chunks.push(chunk);
    }
    return chunks;
  }
}

export const anthropicMessages: Dialect<{ model: string; stream?: boolean }> = {
  name: 'anthropic.messages',
  operation: 'generate',
  schema: Type.Object({ model: Type.String({ minLength: 1 }), stream: Type.Optional(Type.Boolean()) }, { additionalProperties: true }),
  routing: (body) => ({ model: body.model, stream: body.stream === true }),
  error: anthropicError,
  streamError: (error) => `event: error\ndata: ${JSON.stringify(JSON.parse(anthropicError(error).body))}\n\n`,
  framing: { contentType: 'text/event-stream', keepalive: SSE_KEEPALIVE },
  requestFromInternal(internal, options) {
    if (internal.form !== 'chat') throw new GatewayError('invalid_request', `anthropic serves chat requests only, not ${internal.form === 'completion' ? 'text completions' : internal.form}`);
    const maxTokens = options.defaults?.['max_tokens'];
    const body = toAnthropicRequest({ ...internal.request, model: options.model }, typeof maxTokens === 'number' ? { defaultMaxTokens: maxTokens } : {});
    return { ...body, stream: options.stream };
  },
  answerToInternal: (body) => fromAnthropicMessage(body as Parameters<typeof fromAnthropicMessage>[0]),
  createDecoder: () => new AnthropicStreamDecoder(),
};
