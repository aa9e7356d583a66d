import type { Dialect } from '../../types.ts';
import { ollamaError } from '../errors.ts';
import { ollamaPassThrough } from '../pass-through.ts';
import { ollamaEmbeddingsShortcut } from '../shortcuts.ts';
import { embeddingsAnswerFromInternal } from './client-answer.ts';
import { embeddingsRequestToInternal } from './client-request.ts';
import { OllamaEmbeddingsRequestSchema, type OllamaEmbeddingsBody } from './schema.ts';

export { OllamaEmbeddingsRequestSchema, type OllamaEmbeddingsBody } from './schema.ts';
export { embeddingsRequestToInternal } from './client-request.ts';
export { embeddingsAnswerFromInternal } from './client-answer.ts';

/**
 * Ollama's older `POST /api/embeddings` (still served by Ollama and called by Open WebUI). A client
 * side and a pass-through only: the internal embeddings form goes to Ollama as `/api/embed`.
 */
export const ollamaEmbeddings: Dialect<OllamaEmbeddingsBody> = {
  name: 'ollama.embeddings',
  operation: 'embed',
  schema: OllamaEmbeddingsRequestSchema,
  routing: (body) => ({ model: body.model, stream: false }),
  error: ollamaError,
  backendErrorsVerbatim: true,
  shortcut: ollamaEmbeddingsShortcut,

  requestToInternal: embeddingsRequestToInternal,
  answerFromInternal: embeddingsAnswerFromInternal,

  passThrough: (bytes, options) => ollamaPassThrough(bytes, options, false),
  // The answer is `{"embedding":[…]}`: no model, no counts to read.
  readAnswer: () => ({}),
};
