import type { Dialect, EmbeddingsRequest, EmbeddingsResponse } from '../types.ts';
import { setTopLevel } from '../json-bytes.ts';
import { openAIError, readOpenAIAnswer } from '../openai-chat/index.ts';
import { EmbeddingsRequestSchema, type EmbeddingsRequestPayload } from './schema.ts';

export { EmbeddingsRequestSchema, type EmbeddingsRequestPayload } from './schema.ts';

/** OpenAI embeddings (`POST /v1/embeddings`): the internal form of embeddings. vLLM and OpenAI speak it. */
export const openAIEmbeddings: Dialect<EmbeddingsRequestPayload> = {
  name: 'openai.embeddings',
  operation: 'embed',
  schema: EmbeddingsRequestSchema,
  routing: (body) => ({ model: body.model, stream: false }),
  error: openAIError,

  requestToInternal: (body) => ({ form: 'embeddings', request: body as EmbeddingsRequest }),
  // The internal answer carries floats; a client that asked for base64 (the SDK's default) gets base64.
  answerFromInternal: (answer, _context, body) => JSON.stringify(body.encoding_format === 'base64' ? base64Vectors(answer as EmbeddingsResponse) : answer),

  passThrough: (bytes, options) => setTopLevel(bytes, { model: options.model }),
  // A batch of vectors can be megabytes: read only the usage and the model, after the vectors.
  readAnswer: readOpenAIAnswer,
  requestFromInternal(internal, options) {
    if (internal.form !== 'embeddings') throw new TypeError(`openai.embeddings carries embeddings requests, not ${internal.form}`);
    return { ...internal.request, model: options.model };
  },
  answerToInternal: (body) => body as EmbeddingsResponse,
};

/** Each vector as little-endian float32 bytes in base64, as OpenAI sends `encoding_format: base64`. */
function base64Vectors(answer: EmbeddingsResponse): unknown {
  return { ...answer, data: answer.data.map((d) => ({ ...d, embedding: Buffer.from(new Float32Array(d.embedding).buffer).toString('base64') })) };
}
