import type { Dialect } from '../../types.ts';
import { ollamaError } from '../errors.ts';
import { ollamaPassThrough } from '../pass-through.ts';
import { ollamaEmbedShortcut } from '../shortcuts.ts';
import { readOllamaAnswer } from '../watch.ts';
import { embedAnswerToInternal } from './backend-answer.ts';
import { embedRequestFromInternal } from './backend-request.ts';
import { embedAnswerFromInternal } from './client-answer.ts';
import { embedRequestToInternal } from './client-request.ts';
import { OllamaEmbedRequestSchema, type OllamaEmbedBody } from './schema.ts';

export { OllamaEmbedRequestSchema, type OllamaEmbedBody } from './schema.ts';
export { embedRequestToInternal } from './client-request.ts';
export { embedAnswerFromInternal, embeddingVectors } from './client-answer.ts';
export { toOllamaEmbedRequest, embedRequestFromInternal } from './backend-request.ts';
export { fromOllamaEmbedResponse, embedAnswerToInternal } from './backend-answer.ts';

/** Ollama's `POST /api/embed`: one JSON answer, never streamed. The internal embeddings form goes to Ollama through it. */
export const ollamaEmbed: Dialect<OllamaEmbedBody> = {
  name: 'ollama.embed',
  operation: 'embed',
  schema: OllamaEmbedRequestSchema,
  routing: (body) => ({ model: body.model, stream: false }),
  error: ollamaError,
  backendErrorsVerbatim: true,
  shortcut: ollamaEmbedShortcut,

  requestToInternal: embedRequestToInternal,
  answerFromInternal: embedAnswerFromInternal,

  passThrough: (bytes, options) => ollamaPassThrough(bytes, options, false),
  // The vectors can be megabytes: only the top level's counts and model are read.
  readAnswer: readOllamaAnswer,
  requestFromInternal: embedRequestFromInternal,
  answerToInternal: embedAnswerToInternal,
};
