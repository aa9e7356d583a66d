import { backendFetch } from '../http.ts';
import Anthropic, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from '@anthropic-ai/sdk';
import { GatewayError, parseRetryAfter } from '@homelab/bus';
import { fromAnthropicStreamError } from '@homelab/dialects';

export interface AnthropicClientOptions {
  /** An origin, as the SDK reads `ANTHROPIC_BASE_URL` (default https://api.anthropic.com). */
  baseURL?: string;
  apiKey: string;
  /** Per request; default 10 minutes. */
  timeoutMs?: number;
  /** TCP connect timeout to the backend. */
  connectTimeoutMs?: number;
}

export function createAnthropicClient(options: AnthropicClientOptions): Anthropic {
  return new Anthropic({
    apiKey: options.apiKey,
    ...(options.baseURL !== undefined && { baseURL: options.baseURL }),
    // Retries are the router's job: it may pick another backend instead.
    maxRetries: 0,
    // Always set: without a timeout the SDK refuses non-streaming requests with a large max_tokens.
    timeout: options.timeoutMs ?? 600_000,
    // Errors reach the caller as GatewayErrors; the SDK need not log them too.
    logLevel: 'off',
    fetch: backendFetch(options.connectTimeoutMs),
  });
}

/**
 * Maps whatever the SDK throws to a GatewayError. `contentSent` says whether chunks
 * already went to the requester. Messages never carry the API key.
 */
export function mapAnthropicError(err: unknown, signal?: AbortSignal, contentSent = false): GatewayError {
  if (err instanceof GatewayError) return err;
  if (signal?.aborted || err instanceof APIUserAbortError || (err instanceof Error && err.name === 'AbortError')) {
    return new GatewayError('cancelled', 'request cancelled', { cause: err, contentSent });
  }
  if (err instanceof APIConnectionTimeoutError) return new GatewayError('timeout', 'anthropic did not answer in time', { cause: err, contentSent });
  if (err instanceof APIConnectionError) return new GatewayError('backend_unavailable', `anthropic unreachable: ${err.message}`, { cause: err, contentSent });
  if (err instanceof APIError) {
    const message = err.apiMessage ?? err.message;
    const options = { cause: err, contentSent };
    const status = err.status;
    // An `error` event in the stream: no HTTP status, only Anthropic's error type.
    if (status === undefined) return fromAnthropicStreamError({ type: err.type ?? 'api_error', message }, contentSent);
    if (status === 429) {
      return new GatewayError('rate_limited', `anthropic rate limit: ${message}`, { ...options, retryAfterMs: parseRetryAfter(err.headers?.get('retry-after')) });
    }
    if (status === 529 || status === 503) return new GatewayError('backend_unavailable', `anthropic overloaded: ${message}`, options);
    if (status === 504 || status === 408) return new GatewayError('timeout', `anthropic timed out: ${message}`, options);
    if (status >= 500) return new GatewayError('backend_error', `anthropic error ${status}: ${message}`, options);
    // The upstream text is left out on purpose: it could echo the credential.
    if (status === 401 || status === 403) return new GatewayError('unauthorized', `anthropic rejected the configured API key (${status})`, { contentSent });
    if (status === 404) return new GatewayError('model_not_found', message, options);
    if (status === 413) return new GatewayError('body_too_large', message, options);
    if (status === 400 || status === 422) return new GatewayError('invalid_request', message, options);
    // 402 (billing) and the like: this backend cannot serve, another one may.
    return new GatewayError('backend_error', `anthropic error ${status}: ${message}`, options);
  }
  // A malformed event (SyntaxError) or a connection dropped mid-stream.
  const reason = err instanceof SyntaxError ? 'malformed stream from anthropic' : `anthropic stream failed: ${(err as Error)?.message ?? String(err)}`;
  return new GatewayError('backend_error', reason, { cause: err, contentSent });
}
