import type { EmbeddingsRequest, EmbeddingsResponse, TranslationContext } from '../../types.ts';
import { ollamaBackendError } from '../errors.ts';
import type { OllamaEmbedResponse } from '../wire.ts';

/** Ollama `/api/embed` answer → OpenAI embeddings list; `encoding_format: 'base64'` gives little-endian float32 base64 as OpenAI does. */
export function fromOllamaEmbedResponse(response: OllamaEmbedResponse, request: Pick<EmbeddingsRequest, 'model' | 'encoding_format'>): EmbeddingsResponse {
  const base64 = request.encoding_format === 'base64';
  const prompt = response.prompt_eval_count ?? 0;
  return {
    object: 'list',
    model: response.model || request.model,
    data: response.embeddings.map((vector, index) => ({
      object: 'embedding',
      index,
      // The SDK decodes base64 itself; the type only knows number[].
      embedding: base64 ? (Buffer.from(new Float32Array(vector).buffer).toString('base64') as unknown as number[]) : vector,
    })),
    usage: { prompt_tokens: prompt, total_tokens: prompt },
  };
}

/**
 * `answerToInternal` of `ollama.embed`: floats, since the interface does not carry the client's
 * `encoding_format` (the client dialect encodes base64 where its client asked).
 */
export function embedAnswerToInternal(body: unknown, context: Pick<TranslationContext, 'model'>): EmbeddingsResponse {
  const response = body as OllamaEmbedResponse & { error?: string };
  if (typeof response.error === 'string') throw ollamaBackendError(response.error);
  return fromOllamaEmbedResponse(response, { model: context.model });
}
