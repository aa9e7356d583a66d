import { describe, expect, it } from 'vitest';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { GatewayError } from '@homelab/bus';
import { toBackendError, upstreamMessage } from './api.ts';

function statusError(status: number, body: unknown, headers: Record<string, string> = {}): APIError {
  return APIError.generate(status, body as object, undefined, new Headers(headers));
}

describe('toBackendError', () => {
  it('reads the message from vLLM ≥ 0.10.1, older flat vLLM, bare-string and text bodies', () => {
    expect(upstreamMessage(statusError(400, { error: { message: 'max_tokens too large', type: 'BadRequestError', param: null, code: 400 } }))).toBe('max_tokens too large');
    // The SDK's client wraps a flat body as `{ error: body }` before `generate`; this is what reaches us.
    expect(upstreamMessage(statusError(400, { error: { object: 'error', message: 'old style', type: 'BadRequestError', param: null, code: 400 } }))).toBe('old style');
    expect(upstreamMessage(statusError(401, { error: 'Unauthorized' }))).toBe('Unauthorized');
    expect(upstreamMessage(APIError.generate(502, undefined, 'Bad Gateway from nginx', new Headers()))).toBe('Bad Gateway from nginx');
    expect(upstreamMessage(statusError(400, { error: { message: 'x'.repeat(2000) } }))).toHaveLength(501);
  });

  it('maps statuses to the error table', () => {
    expect(toBackendError(statusError(422, { error: { message: 'bad field', param: 'temperature' } }), 'vllm')).toMatchObject({ code: 'invalid_request', message: 'bad field', param: 'temperature', retryable: false });
    const forbidden = toBackendError(statusError(403, { error: { message: 'key sk-abc is not allowed' } }), 'openai');
    expect(forbidden).toMatchObject({ code: 'unauthorized', message: "openai rejected the gateway's API key (403)" });
    expect(forbidden.cause).toBeUndefined();
    expect(toBackendError(statusError(404, { error: { message: 'no such model' } }), 'vllm')).toMatchObject({ code: 'model_not_found', message: 'vllm: no such model' });
    expect(toBackendError(statusError(504, { error: { message: 'upstream timeout' } }), 'vllm')).toMatchObject({ code: 'timeout', status: 504 });
    expect(toBackendError(statusError(500, { error: { message: 'boom' } }), 'vllm')).toMatchObject({ code: 'backend_error', status: 502, message: 'vllm failed with 500: boom' });
    expect(toBackendError(statusError(409, { error: { message: 'conflict' } }), 'vllm')).toMatchObject({ code: 'invalid_request', retryable: false });
  });

  it('takes the retry hint from retry-after-ms, retry-after seconds or an HTTP date', () => {
    expect(toBackendError(statusError(429, {}, { 'retry-after-ms': '1500', 'retry-after': '9' }), 'openai').retryAfterMs).toBe(1500);
    expect(toBackendError(statusError(429, {}, { 'retry-after': '9' }), 'openai').retryAfterMs).toBe(9000);
    const date = new Date(Date.now() + 60_000).toUTCString();
    const fromDate = toBackendError(statusError(503, {}, { 'retry-after': date }), 'vllm').retryAfterMs!;
    expect(fromDate).toBeGreaterThan(55_000);
    expect(fromDate).toBeLessThanOrEqual(60_000);
    expect(toBackendError(statusError(429, {}), 'openai').retryAfterMs).toBeUndefined();
  });

  it('maps transport failures, stream error events and aborts', () => {
    expect(toBackendError(new APIConnectionTimeoutError(), 'vllm')).toMatchObject({ code: 'timeout' });
    const refused = new APIConnectionError({ cause: Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }) });
    expect(toBackendError(refused, 'vllm')).toMatchObject({ code: 'backend_unavailable', message: 'vllm is unreachable: ECONNREFUSED' });
    // vLLM reports a failure inside a 200 stream as `data: {"error": {...}}`: the SDK throws it without a status.
    const midStream = new APIError(undefined, { message: 'EngineCore died', type: 'InternalServerError', code: 500 }, undefined, new Headers());
    expect(toBackendError(midStream, 'vllm', { contentSent: true })).toMatchObject({ code: 'backend_error', message: 'vllm failed mid-stream: EngineCore died', contentSent: true });
    expect(toBackendError(new APIUserAbortError(), 'vllm')).toMatchObject({ code: 'cancelled' });
    const controller = new AbortController();
    controller.abort();
    expect(toBackendError(new TypeError('terminated'), 'vllm', { signal: controller.signal })).toMatchObject({ code: 'cancelled' });
    expect(toBackendError(new SyntaxError('Unexpected token'), 'openai')).toMatchObject({ code: 'backend_error', message: expect.stringContaining('malformed') });
    const own = new GatewayError('saturated', 'busy');
    expect(toBackendError(own, 'vllm')).toBe(own);
  });
});
