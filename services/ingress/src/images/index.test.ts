import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { KeyRegistry, hashApiKey } from '@homelab/bus';
import { parseConfig } from '@homelab/config';
import { createLogger } from '@homelab/logging';
import { buildApp } from '../app.ts';

const quiet = createLogger({ service: 'ingress', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const KEY = 'hlk_test-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const keys = new KeyRegistry([{ name: 'tester', sha256: hashApiKey(KEY), createdAt: 'config' }]);
// No NATS: every images route must answer 503 in OpenAI's shape, not hang or throw.
const app = () => buildApp({ config: parseConfig('nodes: {}\n', 'lab.yaml', {}), log: quiet, bus: { connected: false, draining: false }, keys });
const auth = { authorization: `Bearer ${KEY}` };

function multipartForm(): { payload: Buffer; headers: Record<string, string> } {
  const boundary = '----homelab-test';
  const payload = Buffer.from([
    `--${boundary}`, 'Content-Disposition: form-data; name="prompt"', '', 'as a watercolour',
    `--${boundary}`, 'Content-Disposition: form-data; name="image"; filename="x.png"', 'Content-Type: image/png', '', 'not really a png',
    `--${boundary}--`, '',
  ].join('\r\n'));
  return { payload, headers: { ...auth, 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

describe('the images routes, before the bus', () => {
  it('generations and both forms of edits answer 503 backend_unavailable with the request\'s id', async () => {
    const a = app();
    const requests = [
      { method: 'POST', url: '/v1/images/generations', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"prompt":"x"}' },
      { method: 'POST', url: '/v1/images/edits', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"prompt":"x","images":[]}' },
      { method: 'POST', url: '/v1/images/edits', ...multipartForm() },
    ] as const;
    for (const request of requests) {
      const res = await a.inject({ ...request, headers: { ...request.headers, 'x-request-id': 'req-images-1' } });
      expect(res.statusCode, request.url).toBe(503);
      expect(res.headers['x-request-id']).toBe('req-images-1');
      expect(res.json()).toMatchObject({ error: { code: 'backend_unavailable', message: 'the gateway is not connected to its message bus yet; retry shortly' } });
    }
  });

  it('a file URL needs a key unless signed; a signed one reaches the route (503 here)', async () => {
    const a = app();
    const bare = await a.inject({ method: 'GET', url: '/v1/images/files/img_aaaaaaaaaaaaaaaaaaaa' });
    expect(bare.statusCode).toBe(401);
    const signed = await a.inject({ method: 'GET', url: '/v1/images/files/img_aaaaaaaaaaaaaaaaaaaa?expires=1&sig=x' });
    expect(signed.statusCode).toBe(503);
    expect(signed.json()).toMatchObject({ error: { code: 'backend_unavailable' } });
  });
});
