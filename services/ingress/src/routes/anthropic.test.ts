import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { KeyRegistry, hashApiKey } from '@homelab/bus';
import { parseConfig } from '@homelab/config';
import { createLogger } from '@homelab/logging';
import { buildApp } from '../app.ts';

const quiet = createLogger({ service: 'ingress', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const KEY = 'hlk_test-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const keys = new KeyRegistry([{ name: 'tester', sha256: hashApiKey(KEY), createdAt: 'config' }]);
// No NATS: what the edge answers before the bus is all there is to see here (the stack tests do the rest).
const app = (extra = '') => buildApp({ config: parseConfig(`nodes: {}\n${extra}`, 'lab.yaml', {}), log: quiet, bus: { connected: false, draining: false }, keys });
const anthropic = { 'anthropic-version': '2023-06-01' };

describe('Anthropic\'s Messages API at the edge', () => {
  it('refuses a missing or wrong key in Anthropic\'s shape, with request-id and x-should-retry: false', async () => {
    const a = app();
    for (const headers of [{}, { 'x-api-key': 'hlk_wrong' }, { authorization: 'Bearer hlk_wrong' }]) {
      const res = await a.inject({ method: 'POST', url: '/v1/messages', headers: { ...anthropic, ...headers }, payload: '{}' });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({ type: 'error', error: { type: 'authentication_error', message: expect.any(String) as string } });
      expect(res.headers['request-id']).toBe(res.headers['x-request-id']);
      expect(res.headers['x-should-retry']).toBe('false');
      expect(res.body).not.toContain('hlk_wrong');
    }
  });

  it('takes the key as x-api-key or Bearer, on both endpoints (past the edge: the bus is down here)', async () => {
    const a = app();
    for (const url of ['/v1/messages', '/v1/messages/count_tokens?beta=true']) {
      for (const headers of [{ 'x-api-key': KEY }, { authorization: `Bearer ${KEY}` }]) {
        const res = await a.inject({ method: 'POST', url, headers: { ...anthropic, ...headers, 'content-type': 'application/json' }, payload: '{}' });
        expect(res.statusCode).toBe(529);
        expect(res.json()).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
        expect(res.headers['request-id']).toMatch(/^req_/);
      }
    }
  });

  it('a body over the limit → 413 request_too_large, with request-id', async () => {
    const res = await app('gateway: { bodyLimitBytes: 1024 }').inject({
      method: 'POST', url: '/v1/messages', headers: { ...anthropic, 'x-api-key': KEY, 'content-type': 'application/json' }, payload: 'x'.repeat(2048),
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ type: 'error', error: { type: 'request_too_large' } });
    expect(res.headers['request-id']).toMatch(/^req_/);
  });

  it('unknown paths under /v1/messages, and any path asked with anthropic-version, answer in Anthropic\'s shape', async () => {
    const a = app();
    const wrongMethod = await a.inject({ method: 'GET', url: '/v1/messages', headers: { 'x-api-key': KEY } });
    expect(wrongMethod.statusCode).toBe(404);
    expect(wrongMethod.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    const unknown = await a.inject({ method: 'GET', url: '/v1/files', headers: { ...anthropic, 'x-api-key': KEY } });
    expect(unknown.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    expect(unknown.headers['request-id']).toMatch(/^req_/);
  });

  it('GET /v1/models: Anthropic\'s errors with anthropic-version, OpenAI\'s without', async () => {
    const a = app();
    const asAnthropic = await a.inject({ method: 'GET', url: '/v1/models', headers: anthropic });
    expect(asAnthropic.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    expect(asAnthropic.headers['request-id']).toMatch(/^req_/);
    const asOpenAI = await a.inject({ method: 'GET', url: '/v1/models' });
    expect(asOpenAI.json()).toMatchObject({ error: { code: 'invalid_api_key' } });
    expect(asOpenAI.headers['request-id']).toBeUndefined();
  });

  it.each([['0', 'greater than or equal to 1'], ['1001', 'less than or equal to 1000'], ['ten', 'a valid integer']])('GET /v1/models?limit=%s → 400 naming the limit', async (limit, words) => {
    const res = await app().inject({ method: 'GET', url: `/v1/models?limit=${limit}`, headers: { ...anthropic, 'x-api-key': KEY } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: `limit: Input should be ${words}` } });
  });
});
