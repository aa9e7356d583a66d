import { setTopLevel, topLevelSpans } from '../json-bytes.ts';
import type { Dialect, PassThroughOptions } from '../types.ts';
import { anthropicAnswerToInternal, AnthropicStreamDecoder } from './backend-answer.ts';
import { anthropicRequestFromInternal } from './backend-request.ts';
import { ANTHROPIC_PING, AnthropicStreamEncoder, anthropicAnswerFromInternal } from './client-answer.ts';
import { anthropicPromptToChat, anthropicRequestToInternal } from './client-request.ts';
import { readCountTokensAnswer } from './count-tokens.ts';
import { anthropicError, anthropicErrorHeaders, anthropicStreamError } from './errors.ts';
import { CountTokensRequestSchema, MessagesRequestSchema, type CountTokensRequestPayload, type MessagesRequestPayload } from './schema.ts';
import { AnthropicStreamWatch, readAnthropicAnswer } from './watch.ts';

export * from './backend-answer.ts';
export * from './backend-request.ts';
export * from './client-answer.ts';
export * from './client-request.ts';
export * from './count-tokens.ts';
export * from './errors.ts';
export { CountTokensRequestSchema, MessagesRequestSchema, type CountTokensRequestPayload, type MessagesRequestPayload } from './schema.ts';
export * from './watch.ts';

/**
 * The client's bytes for an Anthropic backend: the backend's model, and the lab's defaults for
 * fields the client left out. Nothing else changes: thinking, cache_control, betas' fields pass as sent.
 * (Anthropic reports usage in every answer, so nothing need be asked for.)
 */
function anthropicPassThrough(bytes: Uint8Array, options: PassThroughOptions): Uint8Array {
  const values: Record<string, unknown> = { model: options.model };
  const defaults = Object.entries(options.defaults ?? {});
  if (defaults.length > 0) {
    const present = topLevelSpans(bytes, defaults.map(([key]) => key));
    for (const [key, value] of defaults) if (!present?.has(key)) values[key] = value;
  }
  return setTopLevel(bytes, values);
}

/**
 * The Anthropic Messages API (`POST /v1/messages`): what Claude Code and the Anthropic SDK speak.
 * Anthropic's backend speaks it (requests pass through byte for byte, but the model); for the others
 * the request goes through OpenAI's chat form and the answer comes back as a Message or its events.
 */
export const anthropicMessages: Dialect<MessagesRequestPayload> = {
  name: 'anthropic.messages',
  operation: 'generate',
  schema: MessagesRequestSchema,
  routing: (body) => ({ model: body.model, stream: body.stream === true }),
  error: anthropicError,
  errorHeaders: anthropicErrorHeaders,
  streamError: anthropicStreamError,
  // Keepalive: Anthropic's own `ping` event rather than an SSE comment (see ANTHROPIC_PING).
  framing: { contentType: 'text/event-stream', keepalive: ANTHROPIC_PING },

  requestToInternal: anthropicRequestToInternal,
  answerFromInternal: anthropicAnswerFromInternal,
  createEncoder: (context) => new AnthropicStreamEncoder(context),

  passThrough: anthropicPassThrough,
  watch: () => new AnthropicStreamWatch(),
  readAnswer: readAnthropicAnswer,
  requestFromInternal: anthropicRequestFromInternal,
  answerToInternal: anthropicAnswerToInternal,
  createDecoder: (context) => new AnthropicStreamDecoder(context),
};

/**
 * Anthropic's token count (`POST /v1/messages/count_tokens`), answered `{"input_tokens": n}`.
 * Anthropic counts for Claude models (the request passes through). For another backend the worker
 * counts the prompt of `requestToInternal` with the backend's tokenizer where it has one (vLLM's
 * `/tokenize`), else with `estimateInputTokens`, and answers with `countTokensAnswer`.
 */
export const anthropicCountTokens: Dialect<CountTokensRequestPayload> = {
  name: 'anthropic.count_tokens',
  operation: 'count_tokens',
  schema: CountTokensRequestSchema,
  routing: (body) => ({ model: body.model, stream: false }),
  error: anthropicError,
  errorHeaders: anthropicErrorHeaders,

  requestToInternal: (body) => ({ form: 'chat', request: anthropicPromptToChat(body) }),
  passThrough: anthropicPassThrough,
  readAnswer: readCountTokensAnswer,
};
