import { backendFetch } from '../http.ts';
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { GatewayError, parseRetryAfter } from '@homelab/bus';
import type { ProviderName } from '../types.ts';

export interface OpenAIClientOptions {
  /** Base URL including `/v1`, e.g. `http://192.168.1.7:8000/v1`. */
  baseURL: string;
  apiKey: string;
  /** Until the response headers arrive (for a non-streaming call: the whole answer). Default 5 minutes. */
  timeoutMs?: number;
  /** TCP connect timeout to the backend. */
  connectTimeoutMs?: number;
}

/** Node's fetch gives up waiting for response headers after 300 s anyway, so a longer SDK timeout would not apply. */
export const DEFAULT_OPENAI_TIMEOUT_MS = 300_000;

const MAX_MESSAGE_CHARS = 500;

export function createOpenAIClient(options: OpenAIClientOptions): OpenAI {
  return new OpenAI({
    baseURL: options.baseURL,
    apiKey: options.apiKey,
    timeout: options.timeoutMs ?? DEFAULT_OPENAI_TIMEOUT_MS,
    // Retries are the router's job: it may pick another backend instead.
    maxRetries: 0,
    // The gateway reports errors itself; the SDK would log to the console per failed request.
    logLevel: 'off',
    // OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment must not reach other backends.
    organization: null,
    project: null,
    fetch: backendFetch(options.connectTimeoutMs),
  });
}

export interface BackendErrorContext {
  /** The call's signal: once aborted, any failure is a cancellation. */
  signal?: AbortSignal;
  /** Chunks were already handed on, so the router must not switch backend. */
  contentSent?: boolean;
}

/** Maps anything the SDK throws to the gateway's error table. Never puts the API key (or upstream auth text) in a message. */
export function toBackendError(err: unknown, provider: ProviderName, context: BackendErrorContext = {}): GatewayError {
  if (err instanceof GatewayError) return err;
  const contentSent = context.contentSent ?? false;
  if (context.signal?.aborted || err instanceof APIUserAbortError) {
    return new GatewayError('cancelled', `${provider} request cancelled`, { cause: err, contentSent });
  }
  if (err instanceof APIConnectionTimeoutError) {
    return new GatewayError('timeout', `${provider} did not answer in time`, { cause: err, contentSent });
  }
  if (err instanceof APIConnectionError) {
    return new GatewayError('backend_unavailable', `${provider} is unreachable: ${connectionReason(err)}`, { cause: err, contentSent });
  }
  if (err instanceof APIError) {
    // No status: an error event inside a 200 stream (vLLM writes `data: {"error":…}` when generation fails).
    if (err.status === undefined) {
      return new GatewayError('backend_error', `${provider} failed mid-stream: ${upstreamMessage(err)}`, { cause: err, contentSent });
    }
    return fromStatus(err, err.status, provider, contentSent);
  }
  if (err instanceof SyntaxError) {
    return new GatewayError('backend_error', `${provider} sent a malformed stream or response (${err.message})`, { cause: err, contentSent });
  }
  // Thrown here before anything was sent (e.g. JSON.stringify of a request nested too deep): the
  // request's fault, not the backend's, so it must not count against the backend's circuit.
  if (err instanceof RangeError) {
    return new GatewayError('invalid_request', `${provider} request could not be built: ${err.message}`, { cause: err, contentSent });
  }
  // undici's "terminated": the connection dropped while the body was being read.
  if (err instanceof TypeError && err.message === 'terminated') {
    return new GatewayError('backend_error', `${provider} closed the connection mid-answer`, { cause: err, contentSent });
  }
  return new GatewayError('backend_error', `${provider} request failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err, contentSent });
}

function fromStatus(err: APIError, status: number, provider: ProviderName, contentSent: boolean): GatewayError {
  switch (status) {
    case 400:
    case 422:
      return new GatewayError('invalid_request', upstreamMessage(err), { cause: err, param: typeof err.param === 'string' ? err.param : null });
    case 401:
    case 403:
      // No cause and no upstream text: OpenAI's 401 message echoes part of the key.
      return new GatewayError('unauthorized', `${provider} rejected the gateway's API key (${status})`);
    case 404:
      return new GatewayError('model_not_found', `${provider}: ${upstreamMessage(err)}`, { cause: err });
    case 408:
    case 504:
      return new GatewayError('timeout', `${provider} timed out the request`, { cause: err, contentSent });
    case 429:
      return new GatewayError('rate_limited', `${provider} is rate limiting: ${upstreamMessage(err)}`, { cause: err, contentSent, retryAfterMs: retryAfterMs(err.headers) });
    case 503:
      return new GatewayError('backend_unavailable', `${provider} is unavailable: ${upstreamMessage(err)}`, { cause: err, contentSent, retryAfterMs: retryAfterMs(err.headers) });
  }
  // The gateway answers 502 for any upstream 5xx: the upstream's own status is in the message.
  if (status >= 500) return new GatewayError('backend_error', `${provider} failed with ${status}: ${upstreamMessage(err)}`, { cause: err, contentSent });
  return new GatewayError('invalid_request', `${provider}: ${upstreamMessage(err)}`, { cause: err });
}

/**
 * The upstream's own message. The SDK hands over `error` from `{"error":{…}}` (OpenAI, vLLM ≥ 0.10.1), the whole
 * body for the flat `{"object":"error","message":…}` of older vLLM, or a bare string (`{"error":"Unauthorized"}`).
 */
export function upstreamMessage(err: APIError): string {
  const body: unknown = err.error;
  let message: string;
  if (typeof body === 'string') message = body;
  else if (typeof body === 'object' && body !== null && 'message' in body) {
    message = typeof body.message === 'string' ? body.message : JSON.stringify(body.message);
  } else message = err.message.replace(/^\d{3} /, '');
  return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message;
}

/** OpenAI also sends `retry-after-ms`; the standard `retry-after` is seconds or an HTTP date. */
function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = Number(headers?.get('retry-after-ms') ?? NaN);
  return Number.isFinite(ms) && ms >= 0 ? ms : parseRetryAfter(headers?.get('retry-after'));
}

function connectionReason(err: APIConnectionError): string {
  const cause = err.cause as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = cause?.cause?.code ?? cause?.code;
  return typeof code === 'string' ? code : err.message;
}
