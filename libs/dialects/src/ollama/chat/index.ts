import type { Dialect } from '../../types.ts';
import { ollamaLoadMs } from '../backend-facts.ts';
import { ollamaError, ollamaStreamErrorLine } from '../errors.ts';
import { ollamaPassThrough } from '../pass-through.ts';
import { ollamaChatShortcut } from '../shortcuts.ts';
import { OllamaStreamWatch, chatLineHasContent, readOllamaAnswer } from '../watch.ts';
import { chatAnswerToInternal, OllamaChatDecoder } from './backend-answer.ts';
import { chatRequestFromInternal } from './backend-request.ts';
import { chatAnswerFromInternal, OllamaChatEncoder } from './client-answer.ts';
import { chatRequestToInternal } from './client-request.ts';
import { OllamaChatRequestSchema, type OllamaChatBody } from './schema.ts';

export { OllamaChatRequestSchema, OllamaChatMessageSchema, type OllamaChatBody, type OllamaChatBodyMessage } from './schema.ts';
export { chatRequestToInternal } from './client-request.ts';
export { chatAnswerFromInternal, OllamaChatEncoder } from './client-answer.ts';
export { toOllamaChatRequest, chatRequestFromInternal, keepAliveDefault } from './backend-request.ts';
export { OllamaChatStream, OllamaChatDecoder, fromOllamaChatResponse, chatAnswerToInternal } from './backend-answer.ts';

/**
 * Ollama's `POST /api/chat`. Streams NDJSON unless the body says `"stream": false` (Ollama's
 * default is to stream, unlike OpenAI's). Its own backend is Ollama; for the others it translates
 * through OpenAI's chat form.
 */
export const ollamaChat: Dialect<OllamaChatBody> = {
  name: 'ollama.chat',
  operation: 'generate',
  schema: OllamaChatRequestSchema,
  routing: (body) => ({ model: body.model, stream: body.stream !== false }),
  error: ollamaError,
  backendErrorsVerbatim: true,
  shortcut: ollamaChatShortcut,
  streamError: ollamaStreamErrorLine,
  // No keepalive bytes: every NDJSON line must be JSON (Ollama's own Go client fails on a blank line).
  framing: { contentType: 'application/x-ndjson' },

  requestToInternal: chatRequestToInternal,
  answerFromInternal: chatAnswerFromInternal,
  createEncoder: (context) => new OllamaChatEncoder(context),

  passThrough: (bytes, options) => ollamaPassThrough(bytes, options, true),
  watch: () => new OllamaStreamWatch(chatLineHasContent),
  readAnswer: readOllamaAnswer,
  requestFromInternal: chatRequestFromInternal,
  answerToInternal: chatAnswerToInternal,
  loadMsOf: (body) => readLoadMs(body),
  createDecoder: (context) => new OllamaChatDecoder(context),
};

function readLoadMs(body: unknown): number | undefined {
  return ollamaLoadMs(body as { load_duration?: number });
}
