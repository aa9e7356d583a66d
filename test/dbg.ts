import { request } from 'node:http';
import { startTestStack } from '@homelab/testing';
const stack = await startTestStack({ tokens: 24, tokenIntervalMs: 40, services: ['worker-vllm', 'router', 'ingress'] });
try {
  for (let i = 0; i < 5; i++) {
    const id = `dbg-${i}`;
    const hungUpAt = await new Promise<number>((resolve) => {
      const req = request(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id } }, (res) => {
        let n = 0;
        res.on('data', (b: Buffer) => { n += b.length; if (n > 600) { const t = Date.now(); req.destroy(); resolve(t); } });
      });
      req.end(JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', stream: true, messages: [{ role: 'user', content: 'x' }] }));
    });
    await new Promise((r) => setTimeout(r, 1500));
    const rec = stack.sims.vllm.requests.find((r) => r.headers['x-request-id'] === id)!;
    console.log(id, 'aborted', rec.aborted, 'after', rec.closedAt! - hungUpAt, 'ms');
  }
} finally { await stack[Symbol.asyncDispose](); }
