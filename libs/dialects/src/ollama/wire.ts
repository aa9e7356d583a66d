/*
 * Ollama's native wire format, field for field as api/types.go declares it (v0.12; fields of later
 * versions marked). Requests carry what the gateway reads or writes; unknown fields pass through.
 * Durations are nanoseconds. Go's `omitempty` fields are optional here; the others are always sent.
 */

export type OllamaKeepAlive = string | number;

/** `think`: a boolean, or a level (strings only for gpt-oss before 0.13; `max` from later versions). */
export type OllamaThink = boolean | 'low' | 'medium' | 'high' | 'max';

/** `format`: `"json"`, a JSON schema, or `""` (no format). */
export type OllamaFormat = string | Record<string, unknown>;

export interface OllamaToolCall {
  /** Sent by Ollama 0.12.10+ only. */
  id?: string;
  function: { index?: number; name: string; arguments: Record<string, unknown> };
}

export interface OllamaMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  thinking?: string;
  /** Base64 without the data-URL prefix. */
  images?: string[];
  tool_calls?: OllamaToolCall[];
  tool_name?: string;
  /** Understood by Ollama 0.12.10+, ignored by older servers. */
  tool_call_id?: string;
}

export interface OllamaTool {
  type: 'function';
  function: { name: string; description?: string; parameters: Record<string, unknown> };
}

/** The options the gateway maps (Options and Runner in api/types.go have more; they pass through). */
export interface OllamaOptions {
  num_predict?: number;
  stop?: string[];
  seed?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  num_ctx?: number;
  frequency_penalty?: number;
  presence_penalty?: number;
  repeat_penalty?: number;
  [option: string]: unknown;
}

export interface OllamaChatRequest {
  model: string;
  messages: OllamaMessage[];
  stream: boolean;
  format?: OllamaFormat;
  options?: OllamaOptions;
  tools?: OllamaTool[];
  keep_alive?: OllamaKeepAlive;
  think?: OllamaThink;
}

export interface OllamaGenerateRequest {
  model: string;
  prompt: string;
  suffix?: string;
  system?: string;
  template?: string;
  context?: number[];
  stream: boolean;
  raw?: boolean;
  format?: OllamaFormat;
  images?: string[];
  options?: OllamaOptions;
  keep_alive?: OllamaKeepAlive;
  think?: OllamaThink;
}

/** The metrics of a final line (`Metrics` in api/types.go), all `omitempty`. */
export interface OllamaMetrics {
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
}

/** One NDJSON line of `/api/chat`, or the whole answer with `stream: false`. */
export interface OllamaChatResponse extends OllamaMetrics {
  model?: string;
  created_at?: string;
  message?: { role?: string; content?: string; thinking?: string; tool_calls?: OllamaToolCall[] };
  done?: boolean;
  /** `stop`, `length`, `load` or `unload`. */
  done_reason?: string;
  /** An error reported inside a 200 stream. */
  error?: string;
}

/** One NDJSON line of `/api/generate`, or the whole answer with `stream: false`. */
export interface OllamaGenerateResponse extends OllamaMetrics {
  model?: string;
  created_at?: string;
  response?: string;
  thinking?: string;
  done?: boolean;
  done_reason?: string;
  /** Deprecated conversation memory (token ids); never in raw mode. */
  context?: number[];
  tool_calls?: OllamaToolCall[];
  error?: string;
}

export interface OllamaEmbedRequest {
  model: string;
  input: string | string[];
  dimensions?: number;
  truncate?: boolean;
  options?: OllamaOptions;
  keep_alive?: OllamaKeepAlive;
}

export interface OllamaEmbedResponse {
  model?: string;
  embeddings: number[][];
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
}

/** The older `/api/embeddings` answer. */
export interface OllamaEmbeddingResponse {
  embedding: number[];
}

/** `details` of `/api/tags`, `/api/show` and `/api/ps` (`ModelDetails`). */
export interface OllamaModelDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[] | null;
  parameter_size: string;
  quantization_level: string;
}

/** One model of `/api/tags` (`ListModelResponse`). */
export interface OllamaListedModel {
  name: string;
  model: string;
  modified_at: string;
  size: number;
  digest: string;
  details: OllamaModelDetails;
}

/** One model of `/api/ps` (`ProcessModelResponse`). */
export interface OllamaRunningModel {
  name: string;
  model: string;
  size: number;
  digest: string;
  details: OllamaModelDetails;
  expires_at: string;
  size_vram: number;
  context_length: number;
}

/** `/api/show` (`ShowResponse`); the gateway fills what it knows. */
export interface OllamaShowResponse {
  modelfile?: string;
  parameters?: string;
  template?: string;
  details: OllamaModelDetails;
  model_info: Record<string, unknown>;
  capabilities?: OllamaCapability[];
  modified_at: string;
}

/** `model.Capability` in Ollama's types. */
export type OllamaCapability = 'completion' | 'tools' | 'insert' | 'vision' | 'embedding' | 'thinking';

/** Ollama's `done_reason`s. */
export type OllamaDoneReason = 'stop' | 'length' | 'load' | 'unload';
