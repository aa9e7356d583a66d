import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { KeyRegistry, hashApiKey } from '@homelab/bus';
import { parseConfig } from '@homelab/config';
import { createLogger } from '@homelab/logging';
import { buildApp } from './app.ts';

const quiet = createLogger({ service: 'ingress', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const config = (extra = '') => parseConfig(`nodes: {}\n${extra}`, 'lab.yaml', {});
const KEY = 'hlk_test-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const keys = new KeyRegistry([{ name: 'tester', sha256: hashApiKey(KEY), createdAt: 'config' }]);
// No NATS: the bus is "not connected", so authenticated API calls end in 503 — enough to see what comes before.
const app = (extra = '', withKeys = true) => buildApp({ config: config(extra), log: quiet, bus: { connected: false, draining: false }, ...(withKeys && { keys }) });

describe('the edge, before the bus', () => {
  it('keys are required: missing or wrong → 401 in OpenAI\'s shape, a valid one gets through', async () => {
    const a = app();
    const missing = await a.inject({ method: 'GET', url: '/v1/models' });
    expect(missing.statusCode).toBe(401);
    expect(missing.json()).toMatchObject({ error: { code: 'invalid_api_key', message: expect.stringContaining("didn't provide an API key") as string } });
    const wrong = await a.inject({ method: 'GET', url: '/v1/models', headers: { authorization: 'Bearer hlk_nope' } });
    expect(wrong.json()).toMatchObject({ error: { code: 'invalid_api_key', message: expect.stringContaining('Incorrect API key') as string } });
    expect(wrong.body).not.toContain('hlk_nope');
    const ok = await a.inject({ method: 'GET', url: '/v1/models', headers: { authorization: `Bearer ${KEY}` } });
    expect(ok.statusCode).toBe(503); // past auth; the bus is not connected
    expect(ok.json()).toMatchObject({ error: { code: 'backend_unavailable' } });
    expect((await a.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });

  it('limits each client address before looking at the key, so guessing keys is slow', async () => {
    const a = app('auth: { ipRateLimitPerMinute: 3 }');
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await a.inject({ method: 'POST', url: '/v1/chat/completions', headers: { authorization: `Bearer hlk_guess${i}` }, payload: '{}' })).statusCode);
    expect(codes).toEqual([401, 401, 401, 429, 429]);
    const limited = await a.inject({ method: 'GET', url: '/v1/models', headers: { authorization: `Bearer ${KEY}` } });
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Another address is not affected.
    expect((await a.inject({ method: 'GET', url: '/v1/models', remoteAddress: '10.9.9.9', headers: { authorization: `Bearer ${KEY}` } })).statusCode).toBe(503);
  });

  it('CORS is off by default, and answers only the configured origins', async () => {
    const off = await app().inject({ method: 'GET', url: '/healthz', headers: { origin: 'http://evil.example' } });
    expect(off.headers['access-control-allow-origin']).toBeUndefined();
    const on = app('auth: { corsOrigins: ["http://open-webui.lan:3000"] }');
    const allowed = await on.inject({ method: 'GET', url: '/healthz', headers: { origin: 'http://open-webui.lan:3000' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('http://open-webui.lan:3000');
    const other = await on.inject({ method: 'GET', url: '/healthz', headers: { origin: 'http://evil.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    // A page on another site cannot make a browser use the API at all.
    const crossSite = await app().inject({ method: 'POST', url: '/v1/chat/completions', headers: { origin: 'http://evil.example', authorization: `Bearer ${KEY}` }, payload: '{}' });
    expect(crossSite.statusCode).toBe(403);
    expect(crossSite.json()).toMatchObject({ error: { code: 'forbidden' } });
    const preflight = await on.inject({ method: 'OPTIONS', url: '/v1/chat/completions', headers: { origin: 'http://open-webui.lan:3000', 'access-control-request-method': 'POST' } });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-headers']).toContain('authorization');
  });

  it('auth: none lets requests through without a key', async () => {
    const res = await app('', false).inject({ method: 'GET', url: '/v1/models' });
    expect(res.statusCode).toBe(503);
  });

  it('unknown routes and methods: 404 in OpenAI\'s shape, no internals', async () => {
    const res = await app().inject({ method: 'DELETE', url: '/v1/../../etc/passwd' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ error: { code: 'not_found' } });
    expect(res.body).not.toMatch(/at .*\.ts:\d+/);
  });
});

describe('KeyRegistry', () => {
  it('finds keys by hash, never revoked ones', () => {
    const registry = new KeyRegistry([
      { name: 'a', sha256: hashApiKey('hlk_a'), createdAt: 'config' },
      { name: 'b', sha256: hashApiKey('hlk_b'), createdAt: 'config', revokedAt: '2026-11-27T00:00:00Z' },
    ]);
    expect(registry.authenticate('hlk_a')?.name).toBe('a');
    expect(registry.authenticate('hlk_b')).toBeUndefined();
    expect(registry.authenticate(undefined)).toBeUndefined();
    expect(registry.authenticate('')).toBeUndefined();
    expect(registry.byName('b')).toBeUndefined();
  });
});
