import type { Backend } from '../types.ts';
import { createOpenAICompatibleBackend } from '../openai-compatible/index.ts';

export interface OpenAIBackendOptions {
  /** Including `/v1`, as the SDK reads `OPENAI_BASE_URL` (e.g. `https://api.openai.com/v1`). */
  baseURL: string;
  apiKey: string;
  /** The cloud models the lab offers; `listModels()` returns these without asking OpenAI. */
  models: string[];
  timeoutMs?: number;
  connectTimeoutMs?: number;
}

export function createOpenAIBackend(options: OpenAIBackendOptions): Backend {
  return createOpenAICompatibleBackend({
    provider: 'openai',
    baseURL: options.baseURL,
    apiKey: options.apiKey,
    models: options.models,
    timeoutMs: options.timeoutMs,
    ...(options.connectTimeoutMs !== undefined && { connectTimeoutMs: options.connectTimeoutMs }),
  });
}
