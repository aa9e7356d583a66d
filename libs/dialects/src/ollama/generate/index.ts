import type { Dialect } from '../../types.ts';
import { ollamaLoadMs } from '../backend-facts.ts';
import { ollamaError, ollamaStreamErrorLine } from '../errors.ts';
import { ollamaPassThrough } from '../pass-through.ts';
import { ollamaGenerateShortcut } from '../shortcuts.ts';
import { OllamaStreamWatch, generateLineHasContent, readOllamaAnswer } from '../watch.ts';
import { generateAnswerToInternal, OllamaGenerateDecoder } from './backend-answer.ts';
import { generateRequestFromInternal } from './backend-request.ts';
import { generateAnswerFromInternal, OllamaGenerateEncoder } from './client-answer.ts';
import { generateRequestToInternal } from './client-request.ts';
import { OllamaGenerateRequestSchema, type OllamaGenerateBody } from './schema.ts';

export { OllamaGenerateRequestSchema, type OllamaGenerateBody } from './schema.ts';
export { generateRequestToInternal, completionNotSupported } from './client-request.ts';
export { generateAnswerFromInternal, OllamaGenerateEncoder } from './client-answer.ts';
export { toOllamaGenerateRequest, generateRequestFromInternal } from './backend-request.ts';
export { OllamaGenerateStream, OllamaGenerateDecoder, fromOllamaGenerateResponse, generateAnswerToInternal } from './backend-answer.ts';

/**
 * Ollama's `POST /api/generate`. Streams NDJSON unless `"stream": false`. For a backend that is
 * not Ollama, a plain prompt travels as a chat and `suffix` / `raw` as a text completion; legacy
 * completions reach an Ollama backend through it (`requestFromInternal` takes the completion form).
 */
export const ollamaGenerate: Dialect<OllamaGenerateBody> = {
  name: 'ollama.generate',
  operation: 'generate',
  schema: OllamaGenerateRequestSchema,
  routing: (body) => ({ model: body.model, stream: body.stream !== false }),
  error: ollamaError,
  backendErrorsVerbatim: true,
  shortcut: ollamaGenerateShortcut,
  streamError: ollamaStreamErrorLine,
  framing: { contentType: 'application/x-ndjson' },

  requestToInternal: generateRequestToInternal,
  answerFromInternal: generateAnswerFromInternal,
  createEncoder: (context) => new OllamaGenerateEncoder(context),

  passThrough: (bytes, options) => ollamaPassThrough(bytes, options, true),
  watch: () => new OllamaStreamWatch(generateLineHasContent),
  readAnswer: readOllamaAnswer,
  requestFromInternal: generateRequestFromInternal,
  answerToInternal: generateAnswerToInternal,
  loadMsOf: (body) => readLoadMs(body),
  createDecoder: (context) => new OllamaGenerateDecoder(context),
};

function readLoadMs(body: unknown): number | undefined {
  return ollamaLoadMs(body as { load_duration?: number });
}
