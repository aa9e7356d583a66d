import { GatewayError, parseRetryAfter, type GatewayErrorOptions } from '@homelab/bus';
import type { ProviderName } from '../types.ts';

const MAX_MESSAGE_CHARS = 500;

interface StatusContext {
  contentType: string;
  retryAfter?: string | undefined;
  retryAfterMs?: string | undefined;
}

/**
 * The backend's own explanation in an error body, whatever its shape: OpenAI and vLLM ≥ 0.10.1
 * (`{"error":{"message"}}`), older vLLM (`{"message"}`), vLLM's auth (`{"error":"Unauthorized"}`),
 * Ollama (`{"error":"…"}`), FastAPI (`{"detail":…}`). Undefined for a body that is not JSON (a proxy's page).
 */
export function messageOf(text: string): { message: string; param?: string } | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (body === null || typeof body !== 'object') return undefined;
  const b = body as { error?: unknown; message?: unknown; detail?: unknown; param?: unknown };
  const error = b.error;
  if (typeof error === 'string') return { message: clip(error) };
  if (error && typeof error === 'object') {
    const e = error as { message?: unknown; param?: unknown };
    if (typeof e.message === 'string') return { message: clip(e.message), ...(typeof e.param === 'string' && { param: e.param }) };
  }
  if (typeof b.message === 'string') return { message: clip(b.message), ...(typeof b.param === 'string' && { param: b.param }) };
  if (b.detail !== undefined) return { message: clip(typeof b.detail === 'string' ? b.detail : JSON.stringify(b.detail)) };
  return undefined;
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS)}…` : text;
}

function retryHint(context: StatusContext): number | undefined {
  const ms = Number(context.retryAfterMs);
  if (context.retryAfterMs && Number.isFinite(ms) && ms >= 0) return ms;
  return parseRetryAfter(context.retryAfter);
}

/**
 * A backend's non-2xx answer as the gateway's error, which also keeps the backend's own status and
 * explanation: a client that speaks the backend's dialect can get them as they were (`verbatim`).
 */
export class BackendStatusError extends GatewayError {
  /** The backend's HTTP status. */
  readonly upstreamStatus: number;
  /** The backend's own text, when its body had one (never for 401 and 403). */
  readonly upstreamMessage: string | undefined;

  constructor(code: ConstructorParameters<typeof GatewayError>[0], message: string, options: GatewayErrorOptions, upstream: { status: number; message: string | undefined }) {
    super(code, message, options);
    this.upstreamStatus = upstream.status;
    this.upstreamMessage = upstream.message;
  }

  /** The same error with the backend's status and text, as a client of the backend's own API would get it; itself without a text. */
  verbatim(): GatewayError {
    if (this.upstreamMessage === undefined) return this;
    return new GatewayError(this.code, this.upstreamMessage, {
      status: this.upstreamStatus, param: this.param, retryable: this.retryable, cause: this,
      ...(this.retryAfterMs !== undefined && { retryAfterMs: this.retryAfterMs }),
    });
  }
}

/**
 * A non-2xx answer as a GatewayError from the shared table. An authentication failure never
 * carries the upstream text: OpenAI's 401 message echoes part of the key.
 */
export function errorFromStatus(provider: ProviderName, status: number, text: string, context: StatusContext): BackendStatusError {
  const upstream = messageOf(text);
  const secret = status === 401 || status === 403;
  const error = (code: ConstructorParameters<typeof GatewayError>[0], message: string, options: GatewayErrorOptions = {}): BackendStatusError =>
    new BackendStatusError(code, message, options, { status, message: secret ? undefined : upstream?.message });
  const message = upstream?.message ?? `HTTP ${status} with a non-JSON body (${context.contentType || 'no content-type'})`;
  const retryAfterMs = retryHint(context);
  const retry = retryAfterMs === undefined ? {} : { retryAfterMs };
  switch (status) {
    case 400:
    case 422:
      return error('invalid_request', `${provider}: ${message}`, { param: upstream?.param ?? null });
    case 401:
    case 403:
      return error('unauthorized', `${provider} rejected the gateway's credentials (${status})`);
    case 404:
      // Only the backend's own explanation says the model is unknown; a proxy's page or a path the
      // server lacks says nothing about the model.
      return upstream ? error('model_not_found', `${provider}: ${message}`) : error('backend_error', `${provider} answered 404: ${message}`);
    case 408:
    case 504:
      return error('timeout', `${provider} timed out the request (${status})`);
    case 413:
      return error('body_too_large', `${provider}: ${message}`);
    case 429:
      return error('rate_limited', `${provider} is rate limiting: ${message}`, retry);
    case 503:
    case 529: // Anthropic: overloaded
      return error('backend_unavailable', `${provider} is unavailable: ${message}`, retry);
  }
  if (status >= 500) return error('backend_error', `${provider} failed with ${status}: ${message}`);
  return error('invalid_request', `${provider}: ${message}`);
}
