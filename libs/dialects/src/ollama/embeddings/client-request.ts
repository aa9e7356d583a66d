import { GatewayError } from '@homelab/bus';
import type { InternalRequest } from '../../types.ts';
import type { OllamaEmbeddingsBody } from './schema.ts';

/** An Ollama client's `/api/embeddings` → OpenAI's embeddings request with the prompt as its one input. */
export function embeddingsRequestToInternal(body: OllamaEmbeddingsBody): InternalRequest {
  if (!body.prompt) {
    // Ollama answers this without a model run; the gateway answers it itself (ollamaEmbeddingsShortcut).
    throw new GatewayError('invalid_request', 'prompt is empty: there is nothing to embed', { param: 'prompt' });
  }
  return { form: 'embeddings', request: { model: body.model, input: body.prompt } };
}
