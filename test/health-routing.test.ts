import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '@homelab/testing';

// The router consults the health service: a backend reported down is skipped before any request
// is sent to it (here vLLM's probe fails on purpose while its chat endpoint still works, so only
// the health report can explain the skip).
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({
    services: ['health', 'worker-vllm', 'worker-ollama', 'worker-cloud', 'router', 'ingress'],
    extraYaml: `
health:
  intervalMs: 300
  retryIntervalMs: 300
  failuresBeforeDown: 1
  successesBeforeUp: 1
  discovery: { enabled: false }
  targets:
    ai-node/vllm: { probe: http, path: /health-fails-on-purpose, expectStatus: [200] }`,
  });
}, 60_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });

const ask = (model: string) => fetch(`${stack.ingressUrl}/v1/chat/completions`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }] }),
});

describe('health-aware routing', () => {
  it('skips a backend the health service marked down, without calling it', async () => {
    let reason = '';
    for (let i = 0; i < 50 && !reason.includes('vllm down'); i++) {
      reason = (await ask('smart')).headers.get('x-homelab-route-reason') ?? '';
      if (!reason.includes('vllm down')) await new Promise((r) => setTimeout(r, 200));
    }
    expect(reason).toBe('alias:smart > vllm down > ollama');
    const chatsBefore = stack.sims.vllm.requests.filter((r) => r.path === '/v1/chat/completions').length;
    const res = await ask('smart');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-homelab-backend')).toBe('ollama');
    expect(stack.sims.vllm.requests.filter((r) => r.path === '/v1/chat/completions').length).toBe(chatsBefore);
    // The snapshot behind it is served at GET /status.
    const status = await (await fetch(`${stack.ingressUrl}/status`)).json() as { targets: { key: string; state: string }[] };
    expect(status.targets.find((t) => t.key === 'ai-node.vllm')?.state).toBe('down');
    expect(status.targets.find((t) => t.key === 'ai-node.ollama')?.state).toBe('up');
  });
});
