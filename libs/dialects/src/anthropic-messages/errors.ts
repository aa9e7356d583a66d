import type { ErrorCode, GatewayError } from '@homelab/bus';
import { sseEvent } from '../framing.ts';
import type { DialectError } from '../types.ts';

/*
 * The gateway's errors in Anthropic's shape: `{"type":"error","error":{"type","message"}}` with
 * Anthropic's status codes, so the Anthropic SDK raises its own error classes (RateLimitError,
 * OverloadedError, …) and Claude Code shows and retries them as it does Anthropic's.
 */

/** Anthropic's error types, by the status Anthropic sends them with. */
export type AnthropicErrorType =
  | 'invalid_request_error' | 'authentication_error' | 'permission_error' | 'not_found_error' | 'request_too_large'
  | 'rate_limit_error' | 'api_error' | 'timeout_error' | 'overloaded_error';

export interface AnthropicErrorBody {
  type: 'error';
  error: { type: AnthropicErrorType; message: string };
}

/**
 * Every gateway code as Anthropic would say it. Anthropic has no 502 or 503: a failing backend is its
 * `api_error` (500); a backend that is down or full is `overloaded_error` (529, "try again shortly"),
 * not `rate_limit_error` (429), which means the caller's own limit. The key's spending budget is the
 * caller's own limit, so it is a 429, as Anthropic's own spend limit is.
 */
const ANTHROPIC_ERRORS: Record<ErrorCode, { status: number; type: AnthropicErrorType }> = {
  invalid_request: { status: 400, type: 'invalid_request_error' },
  invalid_json: { status: 400, type: 'invalid_request_error' },
  unsupported: { status: 400, type: 'invalid_request_error' },
  unauthorized: { status: 401, type: 'authentication_error' },
  invalid_api_key: { status: 401, type: 'authentication_error' },
  forbidden: { status: 403, type: 'permission_error' },
  model_not_found: { status: 404, type: 'not_found_error' },
  not_found: { status: 404, type: 'not_found_error' },
  body_too_large: { status: 413, type: 'request_too_large' },
  rate_limited: { status: 429, type: 'rate_limit_error' },
  budget_exceeded: { status: 429, type: 'rate_limit_error' },
  saturated: { status: 529, type: 'overloaded_error' },
  backend_unavailable: { status: 529, type: 'overloaded_error' },
  no_backend: { status: 529, type: 'overloaded_error' },
  internal_error: { status: 500, type: 'api_error' },
  backend_error: { status: 500, type: 'api_error' },
  timeout: { status: 504, type: 'timeout_error' },
  // The client has gone; Anthropic files unlisted 4xx under invalid_request_error.
  cancelled: { status: 499, type: 'invalid_request_error' },
};

/** The gateway error as Anthropic's error body. */
export function anthropicErrorBody(error: GatewayError): AnthropicErrorBody {
  const { type } = ANTHROPIC_ERRORS[error.code];
  return { type: 'error', error: { type, message: messageOf(error) } };
}

/** A budget refusal must read as final: the SDK and Claude Code would otherwise retry a 429 in vain. */
function messageOf(error: GatewayError): string {
  if (error.code === 'budget_exceeded') return `${error.message} (a spending budget, not a rate limit: retrying will not help)`;
  return error.message;
}

/** The error with Anthropic's status and body (`Dialect.error`). */
export function anthropicError(error: GatewayError): DialectError {
  return { status: ANTHROPIC_ERRORS[error.code].status, body: JSON.stringify(anthropicErrorBody(error)) };
}

/**
 * Headers that go with an error response. `x-should-retry: false` stops the Anthropic SDK's own
 * retries (it otherwise retries every 429 and 5xx) for errors the router marked final; `retry-after`
 * (and the SDK's `retry-after-ms`) say when the others are worth another try.
 */
export function anthropicErrorHeaders(error: GatewayError): Record<string, string> {
  const headers: Record<string, string> = {};
  if (!error.retryable) headers['x-should-retry'] = 'false';
  if (error.retryAfterMs !== undefined) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
    // The Anthropic SDK reads this one first, to the millisecond.
    headers['retry-after-ms'] = String(Math.max(0, Math.round(error.retryAfterMs)));
  }
  return headers;
}

/** An error after the stream began: Anthropic's `event: error` frame, after which the stream ends. */
export function anthropicStreamError(error: GatewayError): string {
  return sseEvent(JSON.stringify(anthropicErrorBody(error)), 'error');
}
