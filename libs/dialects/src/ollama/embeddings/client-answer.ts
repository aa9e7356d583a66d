import type { InternalAnswers, InternalForm } from '../../types.ts';
import { assertEmbeddings, embeddingVectors } from '../embed/client-answer.ts';

/** An internal embeddings answer as the older `/api/embeddings`' `{embedding}` (one prompt, one vector). */
export function embeddingsAnswerFromInternal(answer: InternalAnswers[InternalForm]): string {
  const embeddings = assertEmbeddings(answer, 'ollama.embeddings');
  return JSON.stringify({ embedding: embeddingVectors(embeddings)[0] ?? [] });
}
