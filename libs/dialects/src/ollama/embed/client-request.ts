import { GatewayError } from '@homelab/bus';
import type { EmbeddingsRequest, InternalRequest } from '../../types.ts';
import type { OllamaEmbedBody } from './schema.ts';

/**
 * An Ollama client's `/api/embed` → OpenAI's embeddings request (the internal form). `truncate`,
 * `options` and `keep_alive` have no OpenAI field and are dropped: a too-long input gets the
 * backend's error rather than Ollama's silent truncation (docs/dialects.md).
 */
export function embedRequestToInternal(body: OllamaEmbedBody): InternalRequest {
  const input = body.input;
  if (input == null || input === '' || (Array.isArray(input) && input.length === 0)) {
    // Ollama answers these without a model run; the gateway answers them itself (ollamaEmbedShortcut).
    throw new GatewayError('invalid_request', 'input is empty: there is nothing to embed', { param: 'input' });
  }
  const request: EmbeddingsRequest = { model: body.model, input };
  if (body.dimensions) request.dimensions = body.dimensions;
  return { form: 'embeddings', request };
}
