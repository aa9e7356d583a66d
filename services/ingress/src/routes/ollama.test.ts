import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { KeyRegistry, hashApiKey } from '@homelab/bus';
import { parseConfig } from '@homelab/config';
import { createLogger } from '@homelab/logging';
import { buildApp } from '../app.ts';

const quiet = createLogger({ service: 'ingress', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const KEY = 'hlk_test-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const keys = new KeyRegistry([{ name: 'tester', sha256: hashApiKey(KEY), createdAt: 'config' }]);
// No NATS: what the ingress answers itself is all there is to see (relayed routes end in 503).
const app = () => buildApp({ config: parseConfig('nodes: {}\n', 'lab.yaml', {}), log: quiet, bus: { connected: false, draining: false }, keys });
const auth = { authorization: `Bearer ${KEY}` };

describe("Ollama's API at the edge, before the bus", () => {
  it('GET and HEAD / answer the probe without a key; /api/version needs one', async () => {
    const a = app();
    const root = await a.inject({ method: 'GET', url: '/' });
    expect(root).toMatchObject({ statusCode: 200, body: 'Ollama is running' });
    expect(root.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect((await a.inject({ method: 'HEAD', url: '/' })).statusCode).toBe(200);
    const noKey = await a.inject({ method: 'GET', url: '/api/version' });
    expect(noKey.statusCode).toBe(401);
    expect(Object.keys(noKey.json())).toEqual(['error']);
    const version = await a.inject({ method: 'GET', url: '/api/version', headers: auth });
    expect(version.json()).toEqual({ version: '0.12.3' });
    expect(version.headers['content-type']).toBe('application/json; charset=utf-8');
    expect((await a.inject({ method: 'HEAD', url: '/api/version', headers: auth })).statusCode).toBe(200);
  });

  it('model management is refused with 403 in Ollama\'s shape, naming the operation', async () => {
    const a = app();
    for (const [method, url, operation] of [
      ['POST', '/api/pull', 'pull'], ['POST', '/api/push', 'push'], ['POST', '/api/create', 'create'], ['POST', '/api/copy', 'copy'],
      ['DELETE', '/api/delete', 'delete'], ['HEAD', '/api/blobs/sha256:abc', 'blobs'], ['POST', '/api/blobs/sha256:abc?x=1', 'blobs'],
    ] as const) {
      const res = await a.inject({ method, url, headers: auth, payload: method === 'HEAD' ? undefined : '{"model":"x"}' });
      expect(res.statusCode, url).toBe(403);
      if (method !== 'HEAD') expect(res.json<{ error: string }>().error).toMatch(new RegExp(`^model management \\(${operation}\\) is not available through the gateway`));
    }
  });

  it("every other error on /api is Ollama's {\"error\"}: an unknown path, the bus away, a body over the limit", async () => {
    const a = app();
    const unknown = await a.inject({ method: 'GET', url: '/api/nothing', headers: auth });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ error: 'Unknown request URL: GET /api/nothing' });
    for (const url of ['/api/chat', '/api/generate', '/api/embed', '/api/embeddings', '/api/show']) {
      const res = await a.inject({ method: 'POST', url, headers: auth, payload: '{"model":"x"}' });
      expect(res.statusCode, url).toBe(503);
      expect(Object.keys(res.json()), url).toEqual(['error']);
    }
    const tooLarge = await a.inject({ method: 'POST', url: '/api/chat', headers: { ...auth, 'content-type': 'application/json' }, payload: 'x'.repeat(4 * 1024 * 1024 + 1) });
    expect(tooLarge.statusCode).toBe(413);
    expect(tooLarge.json()).toEqual({ error: `request body is larger than ${4 * 1024 * 1024} bytes` });
  });
});
