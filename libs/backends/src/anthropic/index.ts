import Anthropic, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from '@anthropic-ai/sdk';
import { GatewayError } from '@homelab/bus';
import type { DialectName } from '@homelab/dialects';
import { errorFromSdk, responseBody } from '../http/sdk-errors.ts';
import { pathFor } from '../http/json-backend.ts';
import { sdkFetch } from '../http/origin.ts';
import type { Backend, BackendCall } from '../types.ts';

export interface AnthropicBackendOptions {
  /** An origin, as the SDK reads `ANTHROPIC_BASE_URL` (default https://api.anthropic.com). */
  baseURL?: string;
  apiKey: string;
  /** The models this backend offers (Anthropic's ids); listModels() returns them without a network call. */
  models: string[];
  connectTimeoutMs: number;
  /** Longest silence between two pieces of a streamed answer. */
  idleTimeoutMs: number;
  /** `max_tokens` for a request translated from a dialect that may leave it out (Anthropic requires it). Default 4096. */
  defaultMaxTokens?: number;
}

const PATHS: Partial<Record<DialectName, string>> = {
  'anthropic.messages': '/v1/messages',
  'anthropic.count_tokens': '/v1/messages/count_tokens',
};

const SDK_ERRORS = { APIError, APIConnectionError, APIConnectionTimeoutError, APIUserAbortError };

/**
 * Anthropic's Messages API through the official SDK (authentication, `anthropic-version`), with the
 * body as the client's bytes and the answer raw: an Anthropic client's request passes through
 * unchanged, extended thinking, `cache_control` and `anthropic-beta` features included.
 */
export function createAnthropicBackend(options: AnthropicBackendOptions): Backend {
  const client = new Anthropic({
    apiKey: options.apiKey,
    ...(options.baseURL !== undefined && { baseURL: options.baseURL }),
    // Retries are the router's job: it may pick another backend instead.
    maxRetries: 0,
    logLevel: 'off',
    fetch: sdkFetch({ connectTimeoutMs: options.connectTimeoutMs, bodyTimeoutMs: options.idleTimeoutMs }),
  });
  return {
    provider: 'anthropic',
    dialects: new Set(Object.keys(PATHS) as DialectName[]),
    forms: { chat: 'anthropic.messages' },
    defaults: { max_tokens: options.defaultMaxTokens ?? 4096 },
    async send(call: BackendCall) {
      const path = pathFor('anthropic', PATHS, call.dialect);
      try {
        const response = await client.post(path, {
          body: call.body, signal: call.signal, timeout: call.headersTimeoutMs, stream: call.stream,
          headers: { 'content-type': 'application/json', ...call.headers },
        }).asResponse();
        return { status: response.status, contentType: response.headers.get('content-type') ?? '', body: responseBody(response, 'anthropic', call) };
      } catch (err) {
        throw inAnthropicWords(errorFromSdk(err, 'anthropic', SDK_ERRORS, call), err);
      }
    },
    listModels: async () => options.models.map((id) => ({ id })),
    close: async () => {},
  };
}

/** The caller's mistakes, which Anthropic explains in words its clients read. */
const CLIENT_ERRORS: ReadonlySet<GatewayError['code']> = new Set(['invalid_request', 'model_not_found', 'body_too_large']);

/**
 * Anthropic's own message for the caller's mistakes (400, 404, 413), without the `anthropic: `
 * prefix the shared status mapping adds: Claude Code acts on some by their words ("prompt is too
 * long" → it compacts; "input length and `max_tokens` exceed context limit: …" → a smaller
 * max_tokens), and gateways must not reword them.
 */
function inAnthropicWords(error: GatewayError, err: unknown): GatewayError {
  if (!(err instanceof APIError) || !CLIENT_ERRORS.has(error.code)) return error;
  const message = (err.error as { error?: { message?: unknown } } | undefined)?.error?.message;
  if (typeof message !== 'string' || message === '') return error;
  return new GatewayError(error.code, message, { status: error.status, param: error.param, cause: err });
}
