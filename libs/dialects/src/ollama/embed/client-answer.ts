import type { EmbeddingsResponse, InternalAnswers, InternalForm } from '../../types.ts';
import { orderedMetrics, totalDurationSince, type OllamaTranslationContext } from '../encoding.ts';

/** An embedding as numbers: OpenAI sends base64 little-endian float32 when asked; the gateway asks for floats, but accepts both. */
export function embeddingVector(embedding: number[] | string): number[] {
  if (typeof embedding !== 'string') return embedding;
  const bytes = Buffer.from(embedding, 'base64');
  return [...new Float32Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.byteLength / 4))];
}

/** The vectors of an internal embeddings answer, in input order. */
export function embeddingVectors(answer: EmbeddingsResponse): number[][] {
  return [...answer.data].sort((a, b) => a.index - b.index).map((item) => embeddingVector(item.embedding as number[] | string));
}

export function assertEmbeddings(answer: InternalAnswers[InternalForm], dialect: string): EmbeddingsResponse {
  if (answer.object !== 'list') throw new TypeError(`${dialect} answers embeddings, not ${answer.object}`);
  return answer;
}

/** An internal embeddings answer as `/api/embed`'s: `{model, embeddings, total_duration?, prompt_eval_count}`. */
export function embedAnswerFromInternal(answer: InternalAnswers[InternalForm], context: OllamaTranslationContext): string {
  const embeddings = assertEmbeddings(answer, 'ollama.embed');
  return JSON.stringify({
    model: context.requestedModel,
    embeddings: embeddingVectors(embeddings),
    ...orderedMetrics({ ...totalDurationSince(context), ...(embeddings.usage?.prompt_tokens ? { prompt_eval_count: embeddings.usage.prompt_tokens } : {}) }),
  });
}
