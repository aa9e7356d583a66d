import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '@homelab/bus';
import { errorFromStatus, messageOf } from './status.ts';

// Error bodies as each server writes them: vLLM's `create_error_response` (flat before 0.10.1,
// nested since), OpenAI's API reference, Ollama's api/types.go (`{"error": "…"}`), FastAPI's
// `HTTPException` / validation errors, and a reverse proxy's HTML page.
const VLLM_NESTED = JSON.stringify({ error: { message: "[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required'}]", type: 'BadRequestError', param: 'messages', code: 400 } });
const VLLM_FLAT = JSON.stringify({ object: 'error', message: 'The model `nope` does not exist.', type: 'NotFoundError', param: 'model', code: 404 });
const VLLM_UNAUTHORIZED = JSON.stringify({ error: 'Unauthorized' });
const OLLAMA = JSON.stringify({ error: 'model "mistral" not found, try pulling it first' });
const FASTAPI_DETAIL = JSON.stringify({ detail: 'Not Found' });
const FASTAPI_VALIDATION = JSON.stringify({ detail: [{ type: 'missing', loc: ['body', 'model'], msg: 'Field required' }] });
const OPENAI_401 = JSON.stringify({ error: { message: 'Incorrect API key provided: sk-pro*********6789. You can find your API key at https://platform.openai.com/account/api-keys.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
const HTML = '<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>';

const JSON_TYPE = { contentType: 'application/json' };

describe('messageOf', () => {
  it('reads OpenAI and vLLM >= 0.10.1 errors ({"error":{"message","param"}})', () => {
    expect(messageOf(VLLM_NESTED)).toEqual({ message: "[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required'}]", param: 'messages' });
    // `param: null` is no param at all.
    expect(messageOf(OPENAI_401)).toEqual({ message: expect.stringContaining('Incorrect API key provided') });
    expect(messageOf(OPENAI_401)).not.toHaveProperty('param');
  });

  it("reads vLLM's flat errors from before 0.10.1 ({\"object\":\"error\",\"message\",\"param\"})", () => {
    expect(messageOf(VLLM_FLAT)).toEqual({ message: 'The model `nope` does not exist.', param: 'model' });
  });

  it("reads a bare string error: vLLM's auth and Ollama's every error", () => {
    expect(messageOf(VLLM_UNAUTHORIZED)).toEqual({ message: 'Unauthorized' });
    expect(messageOf(OLLAMA)).toEqual({ message: 'model "mistral" not found, try pulling it first' });
  });

  it("reads FastAPI's detail, a string or a validation list", () => {
    expect(messageOf(FASTAPI_DETAIL)).toEqual({ message: 'Not Found' });
    expect(messageOf(FASTAPI_VALIDATION)).toEqual({ message: '[{"type":"missing","loc":["body","model"],"msg":"Field required"}]' });
  });

  it('has nothing to say for a body that is not a JSON object, or one without an explanation', () => {
    expect(messageOf(HTML)).toBeUndefined();
    expect(messageOf('')).toBeUndefined();
    expect(messageOf('"just a string"')).toBeUndefined();
    expect(messageOf('null')).toBeUndefined();
    expect(messageOf('[1,2]')).toBeUndefined();
    expect(messageOf('{"error":{"type":"server_error"}}')).toBeUndefined();
    expect(messageOf('{"status":"failed"}')).toBeUndefined();
  });

  it('clips a long message to 500 characters', () => {
    const long = 'x'.repeat(2000);
    expect(messageOf(JSON.stringify({ error: long }))!.message).toBe(`${'x'.repeat(500)}…`);
    expect(messageOf(JSON.stringify({ error: { message: long } }))!.message).toHaveLength(501);
    expect(messageOf(JSON.stringify({ detail: long }))!.message).toHaveLength(501);
    expect(messageOf(JSON.stringify({ error: 'x'.repeat(500) }))!.message).toBe('x'.repeat(500));
  });
});

describe('errorFromStatus', () => {
  afterEach(() => { vi.useRealTimers(); });

  it.each([
    [400, 'invalid_request', 400, false],
    [422, 'invalid_request', 400, false],
    [401, 'unauthorized', 401, false],
    [403, 'unauthorized', 401, false],
    [404, 'model_not_found', 404, false],
    [408, 'timeout', 504, true],
    [413, 'body_too_large', 413, false],
    [429, 'rate_limited', 429, true],
    [500, 'backend_error', 502, true],
    [502, 'backend_error', 502, true],
    [503, 'backend_unavailable', 503, true],
    [504, 'timeout', 504, true],
    [409, 'invalid_request', 400, false],
  ] as const)('HTTP %i → %s (%i, retryable %s)', (status, code, gatewayStatus, retryable) => {
    const err = errorFromStatus('vllm', status, JSON.stringify({ error: { message: 'upstream says no' } }), JSON_TYPE);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ code, status: gatewayStatus, retryable });
  });

  it("HTTP 529 (Anthropic's overloaded) → backend_unavailable (503, retryable)", () => {
    const overloaded = JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    expect(errorFromStatus('anthropic', 529, overloaded, JSON_TYPE)).toMatchObject({ code: 'backend_unavailable', status: 503, retryable: true });
  });

  it('a 404 without a JSON explanation is no verdict on the model → backend_error', () => {
    expect(errorFromStatus('ollama', 404, '404 page not found', { contentType: 'text/plain' })).toMatchObject({ code: 'backend_error', retryable: true });
    expect(errorFromStatus('vllm', 404, HTML, { contentType: 'text/html' })).toMatchObject({ code: 'backend_error', retryable: true });
  });

  it('names the provider and carries the upstream message and param', () => {
    expect(errorFromStatus('vllm', 400, VLLM_NESTED, JSON_TYPE)).toMatchObject({ message: expect.stringMatching(/^vllm: \[\{'type': 'missing'/), param: 'messages' });
    expect(errorFromStatus('vllm', 404, VLLM_FLAT, JSON_TYPE)).toMatchObject({ message: 'vllm: The model `nope` does not exist.' });
    expect(errorFromStatus('ollama', 404, OLLAMA, JSON_TYPE)).toMatchObject({ message: 'ollama: model "mistral" not found, try pulling it first', param: null });
    expect(errorFromStatus('vllm', 422, FASTAPI_VALIDATION, JSON_TYPE).message).toBe('vllm: [{"type":"missing","loc":["body","model"],"msg":"Field required"}]');
    expect(errorFromStatus('ollama', 500, JSON.stringify({ error: 'llama runner process has terminated: exit status 2' }), JSON_TYPE).message)
      .toBe('ollama failed with 500: llama runner process has terminated: exit status 2');
    expect(errorFromStatus('openai', 429, JSON.stringify({ error: { message: 'Rate limit reached' } }), JSON_TYPE).message).toBe('openai is rate limiting: Rate limit reached');
    expect(errorFromStatus('vllm', 503, FASTAPI_DETAIL, JSON_TYPE).message).toBe('vllm is unavailable: Not Found');
    expect(errorFromStatus('ollama', 413, OLLAMA, JSON_TYPE).message).toBe('ollama: model "mistral" not found, try pulling it first');
    expect(errorFromStatus('vllm', 504, VLLM_NESTED, JSON_TYPE).message).toBe('vllm timed out the request (504)');
  });

  it("says what came when a proxy's HTML page or an empty body stands in for the backend's error", () => {
    expect(errorFromStatus('ollama', 502, HTML, { contentType: 'text/html' })).toMatchObject({
      code: 'backend_error', message: 'ollama failed with 502: HTTP 502 with a non-JSON body (text/html)',
    });
    expect(errorFromStatus('vllm', 503, '', { contentType: '' })).toMatchObject({
      code: 'backend_unavailable', message: 'vllm is unavailable: HTTP 503 with a non-JSON body (no content-type)',
    });
  });

  it('401 and 403 never carry the upstream text (OpenAI echoes part of the key)', () => {
    for (const status of [401, 403]) {
      const err = errorFromStatus('openai', status, OPENAI_401, JSON_TYPE);
      expect(err.message).toBe(`openai rejected the gateway's credentials (${status})`);
      expect(err.cause).toBeUndefined();
      expect(JSON.stringify({ ...err, message: err.message, openai: err.toOpenAI() })).not.toMatch(/6789|Incorrect API key/);
    }
    expect(errorFromStatus('vllm', 401, VLLM_UNAUTHORIZED, JSON_TYPE).message).toBe("vllm rejected the gateway's credentials (401)");
  });

  it('keeps the backend\'s own status and text for a client of its own API (verbatim), never for 401/403', () => {
    const notFound = errorFromStatus('ollama', 404, OLLAMA, JSON_TYPE).verbatim();
    expect(notFound).toMatchObject({ code: 'model_not_found', status: 404, message: 'model "mistral" not found, try pulling it first' });
    const runner = errorFromStatus('ollama', 500, JSON.stringify({ error: 'llama runner process has terminated: exit status 2' }), JSON_TYPE).verbatim();
    expect(runner).toMatchObject({ code: 'backend_error', status: 500, retryable: true, message: 'llama runner process has terminated: exit status 2' });
    const busy = errorFromStatus('ollama', 503, JSON.stringify({ error: 'server busy' }), { ...JSON_TYPE, retryAfter: '2' }).verbatim();
    expect(busy).toMatchObject({ code: 'backend_unavailable', status: 503, retryAfterMs: 2000, message: 'server busy' });
    // Without the backend's own words there is nothing to pass on: the gateway's error stays.
    const page = errorFromStatus('ollama', 502, HTML, { contentType: 'text/html' });
    expect(page.verbatim()).toBe(page);
    for (const status of [401, 403]) expect(errorFromStatus('openai', status, OPENAI_401, JSON_TYPE).verbatim().message).toBe(`openai rejected the gateway's credentials (${status})`);
  });

  it('takes the retry hint from retry-after-ms first, then retry-after in seconds', () => {
    expect(errorFromStatus('openai', 429, '{}', { ...JSON_TYPE, retryAfterMs: '1500', retryAfter: '20' }).retryAfterMs).toBe(1500);
    expect(errorFromStatus('openai', 429, '{}', { ...JSON_TYPE, retryAfter: '20' }).retryAfterMs).toBe(20_000);
    expect(errorFromStatus('vllm', 503, '{}', { ...JSON_TYPE, retryAfter: '2' }).retryAfterMs).toBe(2000);
    expect(errorFromStatus('vllm', 503, '{}', { ...JSON_TYPE, retryAfter: '0.5' }).retryAfterMs).toBe(500);
    // A retry-after-ms that is not a number of milliseconds does not hide retry-after.
    expect(errorFromStatus('openai', 429, '{}', { ...JSON_TYPE, retryAfterMs: 'soon', retryAfter: '3' }).retryAfterMs).toBe(3000);
    expect(errorFromStatus('openai', 429, '{}', { ...JSON_TYPE, retryAfterMs: '-5', retryAfter: '3' }).retryAfterMs).toBe(3000);
    expect(errorFromStatus('openai', 429, '{}', { ...JSON_TYPE, retryAfterMs: '', retryAfter: '' }).retryAfterMs).toBeUndefined();
    expect(errorFromStatus('openai', 429, '{}', JSON_TYPE).retryAfterMs).toBeUndefined();
  });

  it('reads retry-after as an HTTP date', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2025-10-01T12:00:00Z'));
    expect(errorFromStatus('anthropic', 429, '{}', { ...JSON_TYPE, retryAfter: 'Wed, 01 Oct 2025 12:00:30 GMT' }).retryAfterMs).toBe(30_000);
    // A date already past means: now.
    expect(errorFromStatus('anthropic', 429, '{}', { ...JSON_TYPE, retryAfter: 'Wed, 01 Oct 2025 11:59:00 GMT' }).retryAfterMs).toBe(0);
    expect(errorFromStatus('anthropic', 429, '{}', { ...JSON_TYPE, retryAfter: 'not a date' }).retryAfterMs).toBeUndefined();
  });

  it('gives the retry hint only where a retry later makes sense (429, 503)', () => {
    const hint = { ...JSON_TYPE, retryAfter: '7' };
    expect(errorFromStatus('vllm', 429, '{}', hint).retryAfterMs).toBe(7000);
    expect(errorFromStatus('vllm', 503, '{}', hint).retryAfterMs).toBe(7000);
    for (const status of [400, 401, 404, 500, 502]) expect(errorFromStatus('vllm', status, '{}', hint).retryAfterMs).toBeUndefined();
  });
});
