import type OpenAI from 'openai';

/** The providers a worker can serve. The name is also the model prefix (`vllm/<model>`) and the worker subject token. */
export type ProviderName = 'vllm' | 'ollama' | 'openai' | 'anthropic';

export type ChatRequest = OpenAI.Chat.Completions.ChatCompletionCreateParams;
export type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
export type ChatCompletion = OpenAI.Chat.Completions.ChatCompletion;
export type ChatChunk = OpenAI.Chat.Completions.ChatCompletionChunk;
export type ChatUsage = OpenAI.Completions.CompletionUsage;
export type EmbeddingsRequest = OpenAI.EmbeddingCreateParams;
export type EmbeddingsResponse = OpenAI.CreateEmbeddingResponse;

/** A chunk's delta may carry reasoning text: vLLM and DeepSeek call it `reasoning_content`. */
export type ChunkDeltaWithReasoning = OpenAI.Chat.Completions.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string };

/** A model a backend serves right now. */
export interface BackendModel {
  /** The id the backend knows it by (`qwen2.5:7b`, `Qwen/Qwen2.5-7B-Instruct`). */
  id: string;
  /** Seconds since epoch, when the backend says. */
  created?: number;
  /** Ollama: the model is loaded in memory (from `/api/ps`), so the first token comes fast. */
  loaded?: boolean;
}

export interface ChatCall {
  /** The client's request; `model` is already the backend's own model id (prefix and alias resolved). */
  request: ChatRequest;
  requestId: string;
  /** Aborted when the client goes away or the router gives up: the backend request must be aborted too. */
  signal: AbortSignal;
}

export interface EmbedCall {
  request: EmbeddingsRequest;
  requestId: string;
  signal: AbortSignal;
}

/** Timing facts a backend learns along the way and the worker reports (e.g. Ollama's cold load). */
export interface ChatStreamStats {
  /** Ollama's `load_duration`, in milliseconds, when the model had to be loaded. */
  loadMs?: number;
}

/**
 * One backend: everything a worker needs to serve one provider. Each backend folder
 * (`openai-compatible/`, `vllm/`, `openai/`, `ollama/`, `anthropic/`) exports one factory returning this.
 *
 * Errors: throw `GatewayError` (from @homelab/bus) with code `backend_unavailable` (connection refused, 503),
 * `rate_limited` (429, with `retryAfterMs` from `Retry-After`), `backend_error` (5xx, malformed stream),
 * `timeout`, `invalid_request` (upstream 400, not retryable), `unauthorized` (bad upstream key: the message
 * must never contain the key), `model_not_found` (upstream 404), `cancelled` (signal aborted).
 */
export interface Backend {
  readonly provider: ProviderName;
  /** One non-streaming completion (upstream `stream: false`): one JSON to parse, the cheapest path. */
  chat(call: ChatCall, stats: ChatStreamStats): Promise<ChatCompletion>;
  /**
   * Streams the answer as OpenAI `chat.completion.chunk`s, in order. The last chunk carries `usage`
   * (prompt and completion tokens), with `choices: []` as OpenAI's `include_usage` does.
   */
  chatStream(call: ChatCall, stats: ChatStreamStats): AsyncIterable<ChatChunk>;
  embed(call: EmbedCall): Promise<EmbeddingsResponse>;
  /** The models the backend serves now (vLLM `/v1/models`, Ollama `/api/tags` + `/api/ps`, configured cloud models). */
  listModels(signal: AbortSignal): Promise<BackendModel[]>;
}
