import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { startTestStack } from '@homelab/testing';

describe('traces across hops', () => {
  it('ingress, router, worker and the backend call each export a span of the request\'s trace', async () => {
    const bodies: { service: string; body: Buffer }[] = [];
    const collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const service = ['ingress', 'router', 'worker-vllm', 'worker-ollama', 'worker-cloud'].find((s) => body.includes(Buffer.from(s))) ?? '?';
        bodies.push({ service, body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    try {
      const stack = await startTestStack({ services: ['worker-vllm', 'router', 'ingress'], env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint } });
      try {
        const res = await fetch(`${stack.ingressUrl}/v1/chat/completions`, {
          method: 'POST', headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
          body: JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: [{ role: 'user', content: 'Hi' }] }),
        });
        expect(res.status).toBe(200);
      } finally {
        // Stopping flushes every service's batch of spans.
        await stack[Symbol.asyncDispose]();
      }
      const idBytes = Buffer.from(traceId, 'hex');
      const withTrace = bodies.filter((b) => b.body.includes(idBytes) || b.body.includes(Buffer.from(traceId)));
      expect(new Set(withTrace.map((b) => b.service))).toEqual(new Set(['ingress', 'router', 'worker-vllm']));
      const worker = Buffer.concat(withTrace.filter((b) => b.service === 'worker-vllm').map((b) => b.body));
      // The backend call is a GenAI client span with the conventions' attributes.
      for (const s of ['chat Qwen/Qwen2.5-7B-Instruct', 'gen_ai.provider.name', 'gen_ai.usage.output_tokens', 'server.address']) expect(worker.includes(Buffer.from(s)), s).toBe(true);
    } finally {
      await new Promise<void>((r) => collector.close(() => r()));
    }
  }, 60_000);
});
