import { SSE_KEEPALIVE } from '../framing.ts';
import { setTopLevel } from '../json-bytes.ts';
import { openAIError } from '../openai-chat/index.ts';
import type { ChatCompletion, Dialect, PassThroughOptions } from '../types.ts';
import { ResponsesStreamEncoder, responseFromChat } from './client-answer.ts';
import { responsesToChat } from './client-request.ts';
import { ResponsesRequestSchema, type ResponsesRequestPayload } from './schema.ts';
import { ResponsesStreamWatch, readResponsesAnswer } from './watch.ts';

export * from './schema.ts';
export * from './client-request.ts';
export * from './client-answer.ts';
export * from './watch.ts';
export * from './store.ts';

/**
 * OpenAI's Responses API (`POST /v1/responses`). OpenAI speaks it: requests to OpenAI pass through
 * and OpenAI's events are watched on their way to the client. Every other backend gets the request
 * as a chat request, and its answer comes back as a Response (or the Responses events).
 */
export const openAIResponses: Dialect<ResponsesRequestPayload> = {
  name: 'openai.responses',
  operation: 'generate',
  schema: ResponsesRequestSchema,
  routing: (body) => ({ model: body.model, stream: body.stream === true }),
  error: openAIError,
  framing: { contentType: 'text/event-stream', keepalive: SSE_KEEPALIVE },

  requestToInternal: (body) => ({ form: 'chat', request: responsesToChat(body) }),
  answerFromInternal(answer, context, body) {
    if (!('object' in answer) || answer.object !== 'chat.completion') throw new TypeError('openai.responses answers from chat completions');
    return JSON.stringify(responseFromChat(answer as ChatCompletion, context, body));
  },
  createEncoder: (context, body) => new ResponsesStreamEncoder(context, body),

  // Responses streams always end with the usage in response.completed: only the model is set.
  passThrough: (bytes: Uint8Array, options: PassThroughOptions) => setTopLevel(bytes, { model: options.model }),
  watch: () => new ResponsesStreamWatch(),
  readAnswer: readResponsesAnswer,
};
