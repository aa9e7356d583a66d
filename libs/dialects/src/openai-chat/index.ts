import type { GatewayError } from '@homelab/bus';
import { SSE_KEEPALIVE, sseEvent } from '../framing.ts';
import { readTopLevel, setTopLevel } from '../json-bytes.ts';
import type { ChatChunk, ChatCompletion, ChatRequest, Dialect, DialectError, InternalRequest, PassThroughOptions } from '../types.ts';
import { ChatRequestSchema, type ChatRequestPayload } from './schema.ts';
import { OpenAIStreamDecoder, OpenAIStreamEncoder, OpenAIStreamWatch, readOpenAIAnswer } from './stream.ts';

export { ChatRequestSchema, ChatMessageSchema, type ChatRequestPayload } from './schema.ts';
export * from './stream.ts';

/** OpenAI's error body (`{"error":{"message","type","param","code"}}`) with the gateway's status. */
export function openAIError(error: GatewayError): DialectError {
  return { status: error.status, body: JSON.stringify(error.toOpenAI()) };
}

/** `stream_options` for a stream the gateway passes on: always with usage, for its own accounting. */
export function withUsage(streamOptions: unknown): Record<string, unknown> {
  const given = streamOptions !== null && typeof streamOptions === 'object' ? streamOptions : {};
  return { ...given, include_usage: true };
}

/**
 * OpenAI chat completions (`POST /v1/chat/completions`): the internal form itself, so its
 * translations are the identity. vLLM and OpenAI speak it; requests to them pass through.
 */
export const openAIChat: Dialect<ChatRequestPayload> = {
  name: 'openai.chat',
  operation: 'generate',
  schema: ChatRequestSchema,
  routing: (body) => ({ model: body.model, stream: body.stream === true, includeUsage: body.stream === true && body.stream_options?.include_usage === true }),
  error: openAIError,
  streamError: (error) => sseEvent(JSON.stringify(error.toOpenAI())),
  framing: { contentType: 'text/event-stream', keepalive: SSE_KEEPALIVE },

  requestToInternal: (body) => ({ form: 'chat', request: body as ChatRequest }),
  answerFromInternal: (answer) => JSON.stringify(answer),
  createEncoder: (context) => new OpenAIStreamEncoder<ChatChunk>(context),

  passThrough(bytes: Uint8Array, options: PassThroughOptions): Uint8Array {
    const values: Record<string, unknown> = { model: options.model };
    if (options.stream) values['stream_options'] = withUsage(readTopLevel(bytes, 'stream_options'));
    return setTopLevel(bytes, values);
  },
  watch: ({ includeUsage }) => new OpenAIStreamWatch({ includeUsage }),
  readAnswer: readOpenAIAnswer,
  requestFromInternal(internal: InternalRequest, options: PassThroughOptions): Record<string, unknown> {
    if (internal.form !== 'chat') throw new TypeError(`openai.chat carries chat requests, not ${internal.form}`);
    // Both OpenAI and vLLM reject stream_options without streaming.
    const { stream_options: streamOptions, ...rest } = internal.request;
    return { ...rest, model: options.model, stream: options.stream, ...(options.stream && { stream_options: withUsage(streamOptions) }) };
  },
  answerToInternal: (body) => body as ChatCompletion,
  createDecoder: () => new OpenAIStreamDecoder<ChatChunk>(),
};
