/**
 * The edge as the ai-gateway VM runs it: Debian's Caddy with the `(gateway)` block of
 * deploy/caddy/Caddyfile in front of a real stack, over plain HTTP and over TLS from Caddy's
 * internal CA. Streams must arrive token by token through it, and everything else the ingress
 * says (statuses, error bodies, x-request-id, x-homelab-* headers) must come through unchanged.
 */
import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simText } from '@homelab/simulators';
import { startTestStack, type TestStack } from '@homelab/testing';
import { startCaddy, type CaddyProcess } from './edge-caddy-runner.ts';
import { isOpenAIError, timedRequest, type TimedEvent, type TimedResponse } from './edge-http.ts';

const TOKENS = 10;
const TOKEN_INTERVAL_MS = 150;
const STREAMED = JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: [{ role: 'user', content: 'Hello through Caddy' }], stream: true });
const JSON_HEADERS = { 'content-type': 'application/json' };

let stack: TestStack;
let caddy: CaddyProcess;
// Keep-alive off: each request its own connection, so one test's leftovers cannot delay another.
const agent = new Agent({ keepAlive: false });

beforeAll(async () => {
  // API keys are the ingress's concern (its own tests); here the edge is tested without them.
  stack = await startTestStack({ tokens: TOKENS, tokenIntervalMs: TOKEN_INTERVAL_MS, env: { HOMELAB_AUTH: 'none' } });
  caddy = await startCaddy(new URL(stack.ingressUrl).host);
}, 60_000);
afterAll(async () => {
  await caddy?.[Symbol.asyncDispose]();
  await stack?.[Symbol.asyncDispose]();
});

const contentOf = (e: TimedEvent): string => {
  if (!e.text.startsWith('data: {')) return '';
  return (JSON.parse(e.text.slice(6)) as { choices?: { delta?: { content?: string } }[] }).choices?.[0]?.delta?.content ?? '';
};

/** The stream arrived token by token: the tokens' arrival times span the generation, with gaps between them. */
function expectStreamedUnbuffered(res: TimedResponse): void {
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
  const content = res.events.filter((e) => contentOf(e) !== '');
  expect(content.map(contentOf).join('')).toBe(simText(TOKENS));
  expect(res.events.at(-1)?.text).toBe('data: [DONE]');
  const first = content[0]!.at;
  const last = content.at(-1)!.at;
  // Generation takes (TOKENS - 1) × 150 ms = 1.35 s between the first and the last token. A proxy
  // that buffered the answer would hand all of them over at once, at the end.
  expect(last - first, `content events arrived at ${content.map((e) => e.at.toFixed(0)).join(', ')} ms`).toBeGreaterThan(1000);
  const gaps = content.slice(1).map((e, i) => e.at - content[i]!.at);
  // Most tokens arrive apart (a busy CI machine may hand two over together now and then).
  expect(gaps.filter((g) => g > TOKEN_INTERVAL_MS / 2).length, `gaps between tokens: ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`).toBeGreaterThanOrEqual(Math.ceil((TOKENS - 1) / 2));
}

describe('Caddy in front of the ingress (deploy/caddy/Caddyfile)', () => {
  it('passes a streamed completion through chunk by chunk over HTTP, with the routing headers', async () => {
    const res = await timedRequest(`${caddy.httpUrl}/v1/chat/completions`, {
      method: 'POST', body: STREAMED, agent, headers: { ...JSON_HEADERS, 'x-request-id': 'edge-caddy-stream-1' },
    });
    expectStreamedUnbuffered(res);
    expect(res.headers['x-request-id']).toBe('edge-caddy-stream-1');
    expect(res.headers['x-homelab-backend']).toBe('vllm');
    expect(res.headers['x-homelab-model']).toBe('Qwen/Qwen2.5-7B-Instruct');
    expect(res.headers['x-homelab-route-reason']).toBe('explicit:vllm > vllm');
    expect(res.headers['x-homelab-attempts']).toBe('1');
    expect(Number(res.headers['x-homelab-overhead-ms'])).toBeGreaterThanOrEqual(0);
    expect(res.headers['x-accel-buffering']).toBe('no');
    // No server banner; the snippet's headers are there.
    expect(res.headers['server']).toBeUndefined();
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('passes a streamed completion through chunk by chunk over TLS from Caddy\'s internal CA', async () => {
    const res = await timedRequest(`${caddy.httpsUrl}/v1/chat/completions`, {
      method: 'POST', body: STREAMED, headers: JSON_HEADERS, ca: caddy.rootCert(), servername: 'localhost', agent: false,
    });
    expectStreamedUnbuffered(res);
    // Plain HSTS is for a real domain only (the Caddyfile's ACME alternative), never for a LAN name.
    expect(res.headers['strict-transport-security']).toBeUndefined();
    expect(res.headers['server']).toBeUndefined();
  });

  it('answers a non-streamed completion as the ingress does, headers included', async () => {
    const body = JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] });
    const res = await timedRequest(`${caddy.httpUrl}/v1/chat/completions`, {
      method: 'POST', body, agent, headers: { ...JSON_HEADERS, 'x-request-id': 'edge-caddy-json-1' },
    });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const completion = JSON.parse(res.body) as { object: string; choices: { message: { content: string } }[] };
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]!.message.content).toBe(simText(TOKENS));
    expect(res.headers['x-request-id']).toBe('edge-caddy-json-1');
    expect(res.headers['x-homelab-backend']).toBe('ollama');
    expect(res.headers['x-homelab-route-reason']).toBe('alias:fast > ollama');
    expect(res.headers['server']).toBeUndefined();
  });

  it('passes the client\'s x-homelab-route header to the ingress (a local-only request never reaches the cloud)', async () => {
    const body = JSON.stringify({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'hi' }] });
    const direct = await timedRequest(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', body, agent, headers: { ...JSON_HEADERS, 'x-homelab-route': 'local-only' } });
    const proxied = await timedRequest(`${caddy.httpUrl}/v1/chat/completions`, { method: 'POST', body, agent, headers: { ...JSON_HEADERS, 'x-homelab-route': 'local-only' } });
    expect(direct.status).toBe(503);
    expect(proxied.status).toBe(direct.status);
    expect(isOpenAIError(proxied.body)).toBe(true);
    expect(proxied.headers['x-homelab-route-reason']).toBe(direct.headers['x-homelab-route-reason']);
  });

  it('serves /status, /healthz and /v1/models with the ingress\'s own statuses and bodies', async () => {
    for (const path of ['/status', '/healthz', '/v1/models', '/v1/models/llama3.2:3b', '/v1/models/no-such-model', '/v1/nothing-here']) {
      const direct = await timedRequest(`${stack.ingressUrl}${path}`, { agent });
      const proxied = await timedRequest(`${caddy.httpUrl}${path}`, { agent, headers: { 'x-request-id': `edge-caddy-${path.length}` } });
      expect(proxied.status, path).toBe(direct.status);
      expect(proxied.headers['x-request-id'], path).toBe(`edge-caddy-${path.length}`);
      if (direct.status >= 400) {
        expect(isOpenAIError(proxied.body), `${path}: ${proxied.body}`).toBe(true);
        expect(JSON.parse(proxied.body)).toMatchObject({ error: { code: (JSON.parse(direct.body) as { error: { code: string } }).error.code } });
      } else {
        // The same body, but for the clock: a listing made a moment later may say `created` one second
        // later, and an Ollama model's `expires_at` (its /api/ps, polled by the router) may have moved on.
        expect(withoutClock(JSON.parse(proxied.body))).toEqual(withoutClock(JSON.parse(direct.body)));
      }
    }
    // Without the health service, /status is 503 no_backend; with it, 200. Either way the same through Caddy.
    const status = await timedRequest(`${caddy.httpUrl}/status`, { agent });
    expect([200, 503]).toContain(status.status);
  });

  it('tells the ingress when the client goes away mid-stream, and the backend request is aborted', async () => {
    const before = stack.sims.vllm.requests.length;
    let contentEvents = 0;
    await timedRequest(`${caddy.httpUrl}/v1/chat/completions`, {
      method: 'POST', body: STREAMED, agent: false, headers: JSON_HEADERS,
      onEvent: (e) => contentOf(e) !== '' && ++contentEvents >= 2,
    });
    const upstream = () => stack.sims.vllm.requests.slice(before).find((r) => r.path === '/v1/chat/completions');
    for (let i = 0; i < 100 && !upstream()?.aborted; i++) await new Promise((r) => setTimeout(r, 20));
    expect(upstream()?.aborted, 'the vLLM simulator saw the request cancelled').toBe(true);
    expect(upstream()?.completed).toBe(false);
  });

  it('refuses a body over the gateway\'s 4 MiB limit with 413 in OpenAI\'s shape, every time, sized or chunked', async () => {
    const justOver = Buffer.alloc(4 * 1024 * 1024 + 1, 'a');
    for (let i = 0; i < 5; i++) {
      const sized = await timedRequest(`${caddy.httpUrl}/v1/chat/completions`, { method: 'POST', body: justOver, agent: false, headers: JSON_HEADERS }).catch((err: Error) => err);
      // Caddy may close the connection while the client is still writing; then nothing reached the ingress.
      if (sized instanceof Error) { expect(sized.message).toMatch(/EPIPE|ECONNRESET|socket hang up/); continue; }
      expect(sized.status).toBe(413);
      expect(JSON.parse(sized.body)).toMatchObject({ error: { code: 'body_too_large', type: 'invalid_request_error' } });
    }
    const chunked = await timedRequest(`${caddy.httpUrl}/v1/chat/completions`, { method: 'POST', body: Buffer.alloc(6 * 1024 * 1024, 'a'), agent: false, headers: { ...JSON_HEADERS, 'transfer-encoding': 'chunked', 'content-length': '' } }).catch((err: Error) => err);
    if (chunked instanceof Error) {
      expect(chunked.message).toMatch(/EPIPE|ECONNRESET|socket hang up/);
    } else {
      expect(chunked.status).toBe(413);
      expect(isOpenAIError(chunked.body), chunked.body).toBe(true);
    }
  });

  it('refuses cross-site browser requests (no CORS preflight for text/plain) in OpenAI\'s shape', async () => {
    const before = stack.sims.vllm.requests.length;
    const res = await timedRequest(`${caddy.httpUrl}/v1/chat/completions`, {
      method: 'POST', agent, body: STREAMED,
      headers: { 'content-type': 'text/plain', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors', origin: 'https://evil.example' },
    });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'forbidden', type: 'permission_error' } });
    expect(stack.sims.vllm.requests.length).toBe(before);
    // The lab's own pages and non-browser clients are not affected.
    const sameOrigin = await timedRequest(`${caddy.httpUrl}/v1/models`, { agent, headers: { 'sec-fetch-site': 'same-origin' } });
    expect(sameOrigin.status).toBe(200);
  });

  it('answers 502 in OpenAI\'s shape when the ingress is down', async () => {
    const res = await timedRequest(`${caddy.deadUrl}/v1/models`, { agent });
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'backend_unavailable', type: 'server_error' } });
    expect(res.headers['server']).toBeUndefined();
  });
});

/** A JSON value without the fields that follow the clock (`created`, `expires_at`), at any depth. */
function withoutClock(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutClock);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).filter(([key]) => key !== 'created' && key !== 'expires_at').map(([key, v]) => [key, withoutClock(v)]));
}
