import type { Provider } from '@homelab/config';
import type { DialectName, InternalForm } from '@homelab/dialects';
import type { BackendTimeouts, HttpAnswer } from './http/origin.ts';

/** The providers a worker can serve. The name is also the model prefix (`vllm/<model>`) and the worker subject token. */
export type ProviderName = Provider;

/** A model a backend serves right now. */
export interface BackendModel {
  /** The id the backend knows it by (`qwen2.5:7b`, `Qwen/Qwen2.5-7B-Instruct`). */
  id: string;
  /** Seconds since epoch, when the backend says. */
  created?: number;
  /** Ollama: the model is loaded in memory (from `/api/ps`), so the first token comes fast. */
  loaded?: boolean;
  /**
   * What else the backend says of the model (Ollama: `size`, `digest`, `details`, `modified_at`,
   * `expires_at`, `size_vram`, `context_length`): carried into the lab's catalog, where Ollama's
   * `/api/tags`, `/api/ps` and `/api/show` at the edge show them.
   */
  facts?: Record<string, unknown>;
}

/** One request to a backend, as bytes in one of the dialects it speaks. */
export interface BackendCall extends BackendTimeouts {
  dialect: DialectName;
  body: Uint8Array;
  stream: boolean;
  /** Aborted when the requester goes away or the gateway gives up: the backend request is aborted too. */
  signal: AbortSignal;
  /** Client headers the backend's API defines (e.g. `anthropic-beta`), passed on as they came. */
  headers?: Record<string, string>;
  /** The gateway's request id: sent as `x-request-id` to the lab's own servers (vLLM logs it), so their logs and ours meet. */
  requestId?: string;
}

/**
 * One backend: the transport to one provider's API. It says which dialects it speaks (requests in
 * them pass through as bytes), which of them carries each internal form (what a request in another
 * dialect is translated into), and sends bytes. The translations themselves are the dialects'
 * (libs/dialects); each backend folder (`vllm/`, `ollama/`, `openai/`, `anthropic/`) exports one
 * factory returning this.
 *
 * Errors: `send` throws GatewayError `backend_unavailable` (connection refused, 503),
 * `rate_limited` (429, with `retryAfterMs`), `backend_error` (5xx, a cut body), `timeout`,
 * `invalid_request` (upstream 400, not retryable), `unauthorized` (the upstream key was refused:
 * the message never contains it), `model_not_found` (upstream 404), `cancelled` (signal aborted).
 */
export interface Backend {
  readonly provider: ProviderName;
  /** The dialects this backend speaks itself. */
  readonly dialects: ReadonlySet<DialectName>;
  /** The dialect carrying each internal form to this backend; a form it lacks cannot be served here. */
  readonly forms: Readonly<Partial<Record<InternalForm, DialectName>>>;
  /**
   * Whether its text completions take a `suffix` (fill-in-the-middle). False (vLLM refuses it): a
   * translated request with one gets a clear 400 from the worker, nothing is sent. Default: yes.
   */
  readonly fillInTheMiddle?: boolean;
  /** Fields the lab's config sets in a request unless the client did (Ollama's `keep_alive`). */
  readonly defaults?: Readonly<Record<string, unknown>>;
  /**
   * Extra fields of the internal form that this backend's API refuses (OpenAI answers 400
   * "Unrecognized request argument" to `top_k`, which vLLM, Ollama and Anthropic take): a translated
   * request leaves them out. Pass-through requests are the client's own and keep everything.
   */
  readonly unsupportedFields?: readonly string[];
  /** Sends one request; resolves with a 2xx answer whose body is read as it comes. */
  send(call: BackendCall): Promise<HttpAnswer>;
  /** The models the backend serves now (vLLM `/v1/models`, Ollama `/api/tags` + `/api/ps`, configured cloud models). */
  listModels(signal: AbortSignal): Promise<BackendModel[]>;
  /** Input tokens of a chat prompt (its messages and tool definitions), where the backend can count them (vLLM's `/tokenize`). */
  countTokens?(request: { model: string; messages: unknown[]; tools?: unknown[] }, signal: AbortSignal): Promise<number>;
  /** Lets go of the backend's connections. */
  close(): Promise<void>;
}
