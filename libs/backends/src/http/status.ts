import { GatewayError, parseRetryAfter } from '@homelab/bus';
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
 * A non-2xx answer as a GatewayError from the shared table. An authentication failure never
 * carries the upstream text: OpenAI's 401 message echoes part of the key.
 */
export function errorFromStatus(provider: ProviderName, status: number, text: string, context: StatusContext): GatewayError {
  const upstream = messageOf(text);
  const message = upstream?.message ?? `HTTP ${status} with a non-JSON body (${context.contentType || 'no content-type'})`;
  const retryAfterMs = retryHint(context);
  const retry = retryAfterMs === undefined ? {} : { retryAfterMs };
  switch (status) {
    case 400:
    case 422:
      return new GatewayError('invalid_request', `${provider}: ${message}`, { param: upstream?.param ?? null });
    case 401:
    case 403:
      return new GatewayError('unauthorized', `${provider} rejected the gateway's credentials (${status})`);
    case 404:
      // Only the backend's own explanation says the model is unknown; a proxy's page or a path the
      // server lacks says nothing about the model.
      return upstream ? new GatewayError('model_not_found', `${provider}: ${message}`) : new GatewayError('backend_error', `${provider} answered 404: ${message}`);
    case 408:
    case 504:
      return new GatewayError('timeout', `${provider} timed out the request (${status})`);
    case 413:
      return new GatewayError('body_too_large', `${provider}: ${message}`);
    case 429:
      return new GatewayError('rate_limited', `${provider} is rate limiting: ${message}`, retry);
    case 503:
    case 529: // Anthropic: overloaded
      return new GatewayError('backend_unavailable', `${provider} is unavailable: ${message}`, retry);
  }
  if (status >= 500) return new GatewayError('backend_error', `${provider} failed with ${status}: ${message}`);
  return new GatewayError('invalid_request', `${provider}: ${message}`);
}
