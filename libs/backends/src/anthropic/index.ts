import { GatewayError } from '@homelab/bus';
import type { Backend, BackendModel, ChatChunk, ChatCompletion, ChatCall, EmbeddingsResponse } from '../types.ts';
import { createAnthropicClient, mapAnthropicError } from './api.ts';
import { AnthropicChatStream, fromAnthropicMessage, toAnthropicRequest } from '@homelab/dialects';


export { createAnthropicClient, mapAnthropicError, type AnthropicClientOptions } from './api.ts';

export interface AnthropicBackendOptions {
  /** An origin, as the SDK reads `ANTHROPIC_BASE_URL` (default https://api.anthropic.com). */
  baseURL?: string;
  apiKey: string;
  /** The models this backend offers (Anthropic's ids); listModels() returns them without a network call. */
  models: string[];
  /** `max_tokens` when the client sets none (Anthropic requires one). Default 4096. */
  defaultMaxTokens?: number;
  timeoutMs?: number;
  connectTimeoutMs?: number;
}

/** A Backend that serves OpenAI chat requests from Anthropic's Messages API. */
export function createAnthropicBackend(options: AnthropicBackendOptions): Backend {
  const client = createAnthropicClient(options);
  const translate = { defaultMaxTokens: options.defaultMaxTokens ?? 4096 };

  return {
    provider: 'anthropic',

    async chat({ request, signal }: ChatCall): Promise<ChatCompletion> {
      const body = toAnthropicRequest(request, translate);
      try {
        return fromAnthropicMessage(await client.messages.create({ ...body, stream: false }, { signal }));
      } catch (err) {
        throw mapAnthropicError(err, signal);
      }
    },

    async *chatStream({ request, signal }: ChatCall): AsyncIterable<ChatChunk> {
      const body = toAnthropicRequest(request, translate);
      const translator = new AnthropicChatStream();
      let sent = false;
      try {
        const events = await client.messages.create({ ...body, stream: true }, { signal });
        for await (const event of events) {
          const chunk = translator.push(event);
          if (chunk) {
            sent = true;
            yield chunk;
          }
        }
      } catch (err) {
        throw mapAnthropicError(err, signal, sent);
      }
      // The SDK ends the iteration quietly when aborted, so check both ways a stream can stop short.
      if (signal.aborted) throw new GatewayError('cancelled', 'request cancelled', { contentSent: sent });
      if (!translator.done) throw new GatewayError('backend_error', 'anthropic stream ended before message_stop', { contentSent: sent });
    },

    async embed(): Promise<EmbeddingsResponse> {
      throw new GatewayError('invalid_request', 'anthropic does not offer embeddings');
    },

    async listModels(): Promise<BackendModel[]> {
      return options.models.map((id) => ({ id }));
    },
  };
}
