import type { Backend, BackendModel, ProviderName } from '../types.ts';
import { createOpenAIClient, toBackendError, type OpenAIClientOptions } from './api.ts';
import { chatCompletion, chatCompletionStream } from './chat.ts';

export { createOpenAIClient, DEFAULT_OPENAI_TIMEOUT_MS, toBackendError, upstreamMessage, type BackendErrorContext, type OpenAIClientOptions } from './api.ts';
export { chatCompletion, chatCompletionStream, toNonStreamingRequest, toStreamingRequest } from './chat.ts';

export interface OpenAICompatibleBackendOptions extends OpenAIClientOptions {
  provider: ProviderName;
  /** The models to report instead of asking `/v1/models` (cloud APIs list far more than the lab offers). */
  models?: string[];
}

/** A backend for any server speaking OpenAI's Chat Completions API, through the official SDK. */
export function createOpenAICompatibleBackend(options: OpenAICompatibleBackendOptions): Backend {
  const { provider } = options;
  const client = createOpenAIClient(options);
  const configuredModels = options.models;
  return {
    provider,
    chat: (call) => chatCompletion(client, provider, call),
    chatStream: (call) => chatCompletionStream(client, provider, call),
    async embed({ request, signal }) {
      try {
        return await client.embeddings.create(request, { signal });
      } catch (err) {
        throw toBackendError(err, provider, { signal });
      }
    },
    async listModels(signal): Promise<BackendModel[]> {
      if (configuredModels) return configuredModels.map((id) => ({ id }));
      try {
        const page = await client.models.list({ signal });
        return page.data.map((m) => ({ id: m.id, created: m.created }));
      } catch (err) {
        throw toBackendError(err, provider, { signal });
      }
    },
  };
}
