import { ErrorCodes, GatewayError, type ErrorCode } from '@homelab/bus';
import { describe, expect, it } from 'vitest';
import { anthropicError, anthropicErrorHeaders, anthropicStreamError } from './errors.ts';

describe('anthropicError', () => {
  it('maps every gateway code to an Anthropic status and type', () => {
    const expected: Record<ErrorCode, [number, string]> = {
      invalid_request: [400, 'invalid_request_error'], invalid_json: [400, 'invalid_request_error'], unsupported: [400, 'invalid_request_error'],
      unauthorized: [401, 'authentication_error'], invalid_api_key: [401, 'authentication_error'], forbidden: [403, 'permission_error'],
      model_not_found: [404, 'not_found_error'], not_found: [404, 'not_found_error'], body_too_large: [413, 'request_too_large'],
      rate_limited: [429, 'rate_limit_error'], budget_exceeded: [429, 'rate_limit_error'], saturated: [529, 'overloaded_error'],
      backend_unavailable: [529, 'overloaded_error'], no_backend: [529, 'overloaded_error'], internal_error: [500, 'api_error'],
      backend_error: [500, 'api_error'], timeout: [504, 'timeout_error'], cancelled: [499, 'invalid_request_error'],
    };
    expect(Object.keys(expected).sort()).toEqual(Object.keys(ErrorCodes).sort());
    for (const code of Object.keys(ErrorCodes) as ErrorCode[]) {
      const { status, body } = anthropicError(new GatewayError(code, 'what happened'));
      const parsed = JSON.parse(body) as { type: string; error: { type: string; message: string } };
      expect([code, status, parsed.error.type]).toEqual([code, ...expected[code]]);
      expect(parsed.type).toBe('error');
    }
  });

  it('keeps the message, and says a spent budget is not a rate limit', () => {
    expect(JSON.parse(anthropicError(new GatewayError('model_not_found', "model 'gpt-9' not found", { param: 'model' })).body))
      .toEqual({ type: 'error', error: { type: 'not_found_error', message: "model 'gpt-9' not found" } });
    const spent = JSON.parse(anthropicError(new GatewayError('budget_exceeded', "the daily cloud token budget of key 'ci' is used up")).body) as { error: { message: string } };
    expect(spent.error.message).toBe("the daily cloud token budget of key 'ci' is used up (a spending budget, not a rate limit: retrying will not help)");
  });

  it('gives the retry headers the SDK reads', () => {
    expect(anthropicErrorHeaders(new GatewayError('budget_exceeded', 'spent'))).toEqual({ 'x-should-retry': 'false' });
    expect(anthropicErrorHeaders(new GatewayError('saturated', 'busy', { retryAfterMs: 1500 }))).toEqual({ 'retry-after': '2', 'retry-after-ms': '1500' });
    expect(anthropicErrorHeaders(new GatewayError('backend_unavailable', 'down'))).toEqual({});
  });

  it('writes the in-stream error event', () => {
    expect(anthropicStreamError(new GatewayError('timeout', 'the model stopped answering')))
      .toBe('event: error\ndata: {"type":"error","error":{"type":"timeout_error","message":"the model stopped answering"}}\n\n');
  });
});
