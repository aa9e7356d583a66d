import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createNodeFetch } from './http.ts';

describe('createNodeFetch', () => {
  it('reads JSON answers whole and streams SSE, like fetch', async () => {
    const server = createServer((req, res) => {
      if (req.url === '/json') { res.setHeader('content-type', 'application/json'); res.end('{"a":1}'); return; }
      res.setHeader('content-type', 'text/event-stream');
      res.write('data: 1\n\n');
      setTimeout(() => res.end('data: 2\n\n'), 20);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const f = createNodeFetch();
    expect(await (await f(`${base}/json`, { method: 'POST', body: '{}' })).json()).toEqual({ a: 1 });
    const sse = await f(`${base}/sse`);
    expect(sse.headers.get('content-type')).toBe('text/event-stream');
    expect(await sse.text()).toBe('data: 1\n\ndata: 2\n\n');
    server.close();
  });

  it('fails like undici: refused → TypeError("fetch failed") with the cause; abort → AbortError', async () => {
    const f = createNodeFetch();
    const refused = await f('http://127.0.0.1:1/').then(() => undefined, (e: unknown) => e as TypeError & { cause: { code: string } });
    expect(refused).toBeInstanceOf(TypeError);
    expect(refused?.message).toBe('fetch failed');
    expect(refused?.cause.code).toBe('ECONNREFUSED');
    const server = createServer(() => { /* never answers */ });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const controller = new AbortController();
    const pending = f(`http://127.0.0.1:${(server.address() as { port: number }).port}/`, { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    server.closeAllConnections();
    server.close();
  });
});
