import type { Backend } from '../types.ts';
import { createOpenAICompatibleBackend } from '../openai-compatible/index.ts';

export interface VllmBackendOptions {
  /** The server's origin, e.g. `http://192.168.1.7:8000`. */
  url: string;
  /** vLLM's `--api-key`, when it was started with one. */
  apiKey?: string;
  timeoutMs?: number;
  connectTimeoutMs?: number;
}

/** vLLM without `--api-key` ignores the header, but the SDK insists on some key. */
const NO_API_KEY = 'EMPTY';

/** vLLM's OpenAI-compatible server: chat, embeddings (embedding models only) and `/v1/models`. */
export function createVllmBackend(options: VllmBackendOptions): Backend {
  return createOpenAICompatibleBackend({
    provider: 'vllm',
    baseURL: `${options.url.replace(/\/+$/, '')}/v1`,
    apiKey: options.apiKey || NO_API_KEY,
    timeoutMs: options.timeoutMs,
    ...(options.connectTimeoutMs !== undefined && { connectTimeoutMs: options.connectTimeoutMs }),
  });
}
