/**
 * The error table shared by every service. Each code is stable: it travels in the
 * `Nats-Service-Error-Code` header (as the HTTP status) and in OpenAI's error body
 * (`error.code`), and the router reads `retryable` to decide on a next attempt.
 */
export const ErrorCodes = {
  invalid_request: { status: 400, type: 'invalid_request_error', retryable: false },
  invalid_json: { status: 400, type: 'invalid_request_error', retryable: false },
  // This backend cannot do what the request asks, another may (fill-in-the-middle on vLLM, n > 1 on
  // Ollama, OpenAI's built-in tools on a local model): the router tries the next candidate, not this one again.
  unsupported: { status: 400, type: 'invalid_request_error', retryable: false },
  unauthorized: { status: 401, type: 'authentication_error', retryable: false },
  invalid_api_key: { status: 401, type: 'invalid_request_error', retryable: false },
  forbidden: { status: 403, type: 'permission_error', retryable: false },
  model_not_found: { status: 404, type: 'invalid_request_error', retryable: false },
  not_found: { status: 404, type: 'invalid_request_error', retryable: false },
  body_too_large: { status: 413, type: 'invalid_request_error', retryable: false },
  rate_limited: { status: 429, type: 'rate_limit_error', retryable: true },
  saturated: { status: 429, type: 'rate_limit_error', retryable: true },
  budget_exceeded: { status: 429, type: 'insufficient_quota', retryable: false },
  internal_error: { status: 500, type: 'server_error', retryable: false },
  backend_error: { status: 502, type: 'server_error', retryable: true },
  backend_unavailable: { status: 503, type: 'server_error', retryable: true },
  no_backend: { status: 503, type: 'server_error', retryable: false },
  timeout: { status: 504, type: 'timeout_error', retryable: true },
  cancelled: { status: 499, type: 'cancelled', retryable: false },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface GatewayErrorOptions {
  cause?: unknown;
  /** Overrides the table's status, e.g. to keep an upstream 500 vs 503 distinction. */
  status?: number;
  param?: string | null;
  /** Milliseconds the caller should wait before trying again (from `Retry-After`). */
  retryAfterMs?: number;
  /** Overrides the table's retryable flag. */
  retryable?: boolean;
}

/** An error that crosses process boundaries: it has a stable code, an HTTP status and a retry hint. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    const entry = ErrorCodes[code];
    this.code = code;
    this.status = options.status ?? entry.status;
    this.type = entry.type;
    this.param = options.param ?? null;
    this.retryable = options.retryable ?? entry.retryable;
    this.retryAfterMs = options.retryAfterMs;
  }

  toOpenAI(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Wraps anything thrown into a GatewayError without leaking internals into its message. */
export function toGatewayError(err: unknown, fallback: ErrorCode = 'internal_error'): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof Error && err.name === 'AbortError') return new GatewayError('cancelled', 'request cancelled', { cause: err });
  return new GatewayError(fallback, fallback === 'internal_error' ? 'internal error' : String((err as Error)?.message ?? err), { cause: err });
}

/** Parses an HTTP `Retry-After` header (seconds or HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
