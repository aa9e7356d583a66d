import { GatewayError } from '@homelab/bus';
import type { EmbeddingsRequest, InternalRequest, PassThroughOptions } from '../../types.ts';
import { keepAliveDefault } from '../chat/backend-request.ts';
import type { OllamaExtras } from '../options.ts';
import type { OllamaEmbedRequest, OllamaKeepAlive } from '../wire.ts';

/** OpenAI embeddings request → Ollama `/api/embed` body (text inputs only: Ollama takes no token arrays). */
export function toOllamaEmbedRequest(request: EmbeddingsRequest, keepAlive?: OllamaKeepAlive): OllamaEmbedRequest {
  const input = request.input;
  const isText = typeof input === 'string' || (Array.isArray(input) && input.every((item) => typeof item === 'string'));
  if (!isText) throw new GatewayError('invalid_request', 'Ollama embeds text only: input must be a string or an array of strings', { param: 'input' });
  const out: OllamaEmbedRequest = { model: request.model, input: input as string | string[] };
  if (request.dimensions != null) out.dimensions = request.dimensions;
  const extra = (request as EmbeddingsRequest & OllamaExtras).keep_alive ?? keepAlive;
  if (extra !== undefined) out.keep_alive = extra;
  return out;
}

/** `requestFromInternal` of `ollama.embed`: an internal embeddings request as the `/api/embed` body. */
export function embedRequestFromInternal(internal: InternalRequest, options: PassThroughOptions): Record<string, unknown> {
  if (internal.form !== 'embeddings') throw new TypeError(`ollama.embed carries embeddings requests, not ${internal.form}`);
  return toOllamaEmbedRequest({ ...internal.request, model: options.model }, keepAliveDefault(options)) as unknown as Record<string, unknown>;
}
