import { SSE_KEEPALIVE } from '../framing.ts';
import { readTopLevel, setTopLevel } from '../json-bytes.ts';
import { openAIError, withUsage } from '../openai-chat/index.ts';
import { OpenAIStreamDecoder, OpenAIStreamEncoder, OpenAIStreamWatch, completionChunkHasContent, readOpenAIAnswer } from '../openai-chat/stream.ts';
import type { Completion, CompletionRequest, Dialect, PassThroughOptions } from '../types.ts';
import { CompletionRequestSchema, type CompletionRequestPayload } from './schema.ts';

export { CompletionRequestSchema, type CompletionRequestPayload } from './schema.ts';

/**
 * OpenAI's legacy completions (`POST /v1/completions`): the internal text-completion form itself, so
 * its translations are the identity. vLLM and OpenAI speak it (requests pass through); Ollama's
 * generate dialect translates from it (with `suffix` for fill-in-the-middle, which vLLM refuses).
 * Its streams are OpenAI's SSE chunks and `[DONE]`, as chat's are.
 */
export const openAICompletions: Dialect<CompletionRequestPayload> = {
  name: 'openai.completions',
  operation: 'generate',
  schema: CompletionRequestSchema,
  // As chat: the usage chunk reaches the client only when it asked (stream_options.include_usage).
  routing: (body) => ({ model: body.model, stream: body.stream === true, includeUsage: body.stream === true && body.stream_options?.include_usage === true }),
  error: openAIError,
  framing: { contentType: 'text/event-stream', keepalive: SSE_KEEPALIVE },

  requestToInternal: (body) => ({ form: 'completion', request: body as CompletionRequest }),
  answerFromInternal: (answer) => JSON.stringify(answer),
  createEncoder: (context) => new OpenAIStreamEncoder<Completion>(context),

  passThrough(bytes: Uint8Array, options: PassThroughOptions): Uint8Array {
    const values: Record<string, unknown> = { model: options.model };
    if (options.stream) values['stream_options'] = withUsage(readTopLevel(bytes, 'stream_options'));
    return setTopLevel(bytes, values);
  },
  watch: ({ includeUsage }) => new OpenAIStreamWatch({ includeUsage, hasContent: completionChunkHasContent }),
  readAnswer: readOpenAIAnswer,
  requestFromInternal(internal, options) {
    if (internal.form !== 'completion') throw new TypeError(`openai.completions carries text completion requests, not ${internal.form}`);
    // Both OpenAI and vLLM reject stream_options without streaming.
    const { stream_options: streamOptions, ...rest } = internal.request;
    return { ...rest, model: options.model, stream: options.stream, ...(options.stream && { stream_options: withUsage(streamOptions) }) };
  },
  answerToInternal: (body) => body as Completion,
  createDecoder: () => new OpenAIStreamDecoder<Completion>(),
};
