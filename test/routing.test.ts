import { jetstream } from '@nats-io/jetstream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { simText } from '@homelab/simulators';
import { connectAs, startTestStack, type TestStack } from '@homelab/testing';

// Fault injection through the simulators, on a real NATS with every service its own process.
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({
    tokens: 8,
    backends: {
      vllm: { firstTokenTimeoutMs: 800, maxConcurrent: 2, maxQueue: 0, whenSaturated: 'spill' },
      ollama: { firstTokenTimeoutMs: 3000, maxConcurrent: 2, maxQueue: 1, whenSaturated: 'wait' },
    },
    extraYaml: `
routing:
  retry: { attemptsPerBackend: 2, backoffMs: 20, maxBackoffMs: 100, maxRetryAfterMs: 1500 }
  breaker: { consecutiveFailures: 4, openMs: 1500, minRequests: 100 }
  queueTimeoutMs: 3000`,
  });
}, 60_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });
// The router's breakers keep state between tests, as in production: after each test, clear the
// faults and wait until the local backends' circuits let a probe through and closed again.
afterEach(async () => {
  for (const sim of Object.values(stack.sims)) { sim.setFaults({}); sim.setOptions({ tokens: 8, tokenIntervalMs: 0 }); }
  for (const model of ['vllm/Qwen/Qwen2.5-7B-Instruct', 'ollama/llama3.2:3b']) {
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) {
      ok = (await chat(model)).status === 200;
      if (!ok) await new Promise((res) => setTimeout(res, 100));
    }
    if (!ok) throw new Error(`${model} did not recover after the test`);
  }
});

const hello = [{ role: 'user', content: 'Hello' }];
async function chat(model: string, init: { stream?: boolean; headers?: Record<string, string>; signal?: AbortSignal } = {}) {
  const res = await fetch(`${stack.ingressUrl}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...init.headers }, ...(init.signal && { signal: init.signal }),
    body: JSON.stringify({ model, messages: hello, stream: init.stream ?? false }),
  });
  return { res, status: res.status, backend: res.headers.get('x-homelab-backend'), attempts: res.headers.get('x-homelab-attempts'), reason: res.headers.get('x-homelab-route-reason'), text: await res.text() };
}
const sseEvents = (text: string) => text.split('\n\n').filter(Boolean);
const upstreamChats = (sim: { requests: { path: string }[] }) => sim.requests.filter((r) => /chat|messages/.test(r.path));

describe('retries and fallback before the first token', () => {
  it('a 500 is retried on the same backend, invisibly', async () => {
    stack.sims.vllm.setFaults({ status: 500, failCount: 1 });
    const r = await chat('vllm/Qwen/Qwen2.5-7B-Instruct');
    expect(r.status).toBe(200);
    expect(r.attempts).toBe('2');
    expect(r.reason).toBe('explicit:vllm > vllm backend_error > vllm');
    expect(JSON.parse(r.text).choices[0].message.content).toBe(simText(8));
  });

  it('a 429 with a short Retry-After is waited out and retried', async () => {
    stack.sims.vllm.setFaults({ status: 429, retryAfterSeconds: 1, failCount: 1 });
    const started = Date.now();
    const r = await chat('vllm/Qwen/Qwen2.5-7B-Instruct');
    expect(r.status).toBe(200);
    expect(r.attempts).toBe('2');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('a 429 with a long Retry-After moves on, and later requests skip that backend until then', async () => {
    stack.sims.vllm.setFaults({ status: 429, retryAfterSeconds: 2 });
    const first = await chat('smart');
    expect(first.status).toBe(200);
    expect(first.backend).toBe('ollama');
    expect(first.reason).toBe('alias:smart > vllm rate_limited > ollama');
    const before = upstreamChats(stack.sims.vllm).length;
    const second = await chat('smart');
    expect(second.backend).toBe('ollama');
    expect(second.reason).toBe('alias:smart > vllm rate limited > ollama');
    expect(upstreamChats(stack.sims.vllm).length).toBe(before); // not called while cooling down
    await new Promise((r) => setTimeout(r, 2100));
  });

  it('a stall before the first token times out, is cancelled upstream, and falls back', async () => {
    stack.sims.vllm.setFaults({ stallBeforeFirstTokenMs: 5000 });
    const before = stack.sims.vllm.requests.length;
    const r = await chat('smart', { stream: true });
    expect(r.status).toBe(200);
    expect(r.backend).toBe('ollama');
    expect(r.reason).toBe('alias:smart > vllm first-token timeout > vllm first-token timeout > ollama');
    expect(sseEvents(r.text).at(-1)).toBe('data: [DONE]');
    // The stalled upstream requests were aborted, not left hanging.
    const stalled = stack.sims.vllm.requests.slice(before).filter((q) => q.path === '/v1/chat/completions');
    expect(stalled).toHaveLength(2);
    for (let i = 0; i < 50 && !stalled.every((q) => q.aborted); i++) await new Promise((res) => setTimeout(res, 20));
    expect(stalled.every((q) => q.aborted)).toBe(true);
  });

  it('a malformed chunk before any content falls back; a backend down falls back', async () => {
    stack.sims.vllm.setFaults({ malformedAfterChunks: 0 });
    const malformed = await chat('smart', { stream: true });
    expect(malformed.backend).toBe('ollama');
    expect(malformed.reason).toMatch(/^alias:smart > vllm backend_error > vllm backend_error > ollama$/);
    stack.sims.ollama.setFaults({ status: 503 });
    stack.sims.vllm.setFaults({ status: 503 });
    const cloud = await chat('smart');
    expect(cloud.backend).toBe('anthropic');
    expect(cloud.attempts).toBe('5');
  });
});

describe('after content has reached the client', () => {
  it('a drop mid-stream ends the stream with an explicit error event, never a silent cut or a switch', async () => {
    stack.sims.vllm.setFaults({ dropAfterChunks: 3 });
    const r = await chat('smart', { stream: true });
    expect(r.status).toBe(200);
    expect(r.backend).toBe('vllm');
    const events = sseEvents(r.text);
    expect(events).not.toContain('data: [DONE]');
    const last = JSON.parse(events.at(-1)!.slice(6)) as { error: { code: string; type: string; message: string } };
    expect(last.error.code).toBe('backend_error');
    const content = events.slice(0, -1).map((e) => (JSON.parse(e.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '').join('');
    expect(content.length).toBeGreaterThan(0);
  });

  it('a malformed chunk mid-stream passes through as vLLM sent it: after the first content the gateway watches, it does not parse', async () => {
    stack.sims.vllm.setFaults({ malformedAfterChunks: 3 });
    const r = await chat('vllm/Qwen/Qwen2.5-7B-Instruct', { stream: true });
    const events = sseEvents(r.text);
    expect(events[4]).toBe('data: {not json');
    expect(events.at(-1)).toBe('data: [DONE]');
  });
});

describe('local-only', () => {
  it('never reaches a cloud backend, even when every local backend is down', async () => {
    stack.sims.vllm.setFaults({ status: 503 });
    stack.sims.ollama.setFaults({ status: 503 });
    const anthropicBefore = stack.sims.anthropic.requests.length;
    const openaiBefore = stack.sims.openai.requests.length;
    const viaAlias = await chat('smart', { headers: { 'x-homelab-route': 'local-only' } });
    expect(viaAlias.status).toBe(503);
    expect(viaAlias.reason).toContain('anthropic skipped (local-only)');
    const explicit = await chat('anthropic/claude-haiku-4-5', { headers: { 'x-homelab-route': 'local-only' } });
    expect(explicit.status).toBe(503);
    expect(JSON.parse(explicit.text).error.message).toMatch(/^local-only: /);
    const byName = await chat('gpt-4.1-mini', { headers: { 'x-homelab-route': 'local-only' } });
    expect(byName.status).toBe(503);
    expect(stack.sims.anthropic.requests.length).toBe(anthropicBefore);
    expect(stack.sims.openai.requests.length).toBe(openaiBefore);
  });
});

describe('saturation and backpressure', () => {
  it('past vLLM\'s limit a request spills to the next candidate; with everything saturated: 429 with Retry-After', async () => {
    stack.sims.vllm.setOptions({ tokens: 10, tokenIntervalMs: 150 });
    stack.sims.ollama.setOptions({ tokens: 10, tokenIntervalMs: 150 });
    // local = vllm/*, ollama/llama3.2:3b: vLLM takes 2 (spill), Ollama 2 plus 1 waiting; the 6th has nowhere to go.
    const results = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * 40));
      return chat('local', { stream: true });
    }));
    const backends = results.map((r) => r.backend ?? `${r.status}`).sort();
    expect(backends, JSON.stringify(results.map((r) => [r.status, r.reason, r.text.slice(0, 200)]))).toEqual(['429', 'ollama', 'ollama', 'ollama', 'vllm', 'vllm']);
    const refused = results.find((r) => r.status === 429)!;
    expect(refused.res.headers.get('retry-after')).toBe('1');
    expect(JSON.parse(refused.text).error.code).toBe('saturated');
    expect(results.filter((r) => r.reason?.includes('vllm saturated')).length).toBe(4);
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive failures, skips the backend, probes after the open period and closes', async () => {
    stack.sims.vllm.setFaults({ status: 500 });
    await chat('smart'); // 2 failures on vLLM
    await chat('smart'); // 4: the circuit opens
    const vllmCalls = upstreamChats(stack.sims.vllm).length;
    const skipped = await chat('smart');
    expect(skipped.status).toBe(200);
    expect(skipped.reason, skipped.reason!).toBe('alias:smart > vllm circuit open > ollama');
    expect(upstreamChats(stack.sims.vllm).length).toBe(vllmCalls);
    stack.sims.vllm.setFaults({});
    await new Promise((r) => setTimeout(r, 1600));
    const probe = await chat('smart');
    expect(probe.backend).toBe('vllm');
    // The transitions are events in JetStream.
    await using nc = await connectAs(stack.nats, 'scripts');
    const consumer = await jetstream(nc).consumers.get('INFERENCE', { filter_subjects: 'inference.circuit' });
    const states: string[] = [];
    for await (const m of await consumer.fetch({ max_messages: 50, expires: 1000 })) {
      const e = m.json<{ backend: string; state: string; reason: string }>();
      if (e.backend === 'vllm') states.push(e.state);
    }
    // Earlier tests opened circuits too; this test's transitions are the last three.
    expect(states.slice(-3)).toEqual(['open', 'half-open', 'closed']);
  });
});

describe('cancellation', () => {
  it('clients that disconnect abort every upstream request and free the concurrency slots', async () => {
    stack.sims.vllm.setOptions({ tokens: 100, tokenIntervalMs: 50 });
    const before = stack.sims.vllm.requests.length;
    const controllers = [new AbortController(), new AbortController()];
    await Promise.all(controllers.map(async (c) => {
      const res = await fetch(`${stack.ingressUrl}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, signal: c.signal,
        body: JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: hello, stream: true }),
      });
      await res.body!.getReader().read();
    }));
    const abortedAt = Date.now();
    for (const c of controllers) c.abort();
    const mine = () => stack.sims.vllm.requests.slice(before).filter((q) => q.path === '/v1/chat/completions');
    // Aborted upstream, not left to finish: each answer would take 5 s (100 tokens at 50 ms).
    while (Date.now() - abortedAt < 4000 && !mine().every((q) => q.aborted)) await new Promise((r) => setTimeout(r, 10));
    expect(mine()).toHaveLength(2);
    expect(mine().every((q) => q.aborted)).toBe(true);
    // Both vLLM slots are free again: the next two requests do not spill.
    stack.sims.vllm.setOptions({ tokens: 8, tokenIntervalMs: 0 });
    await new Promise((r) => setTimeout(r, 100));
    const next = await Promise.all([chat('local'), chat('local')]);
    expect(next.map((r) => r.backend)).toEqual(['vllm', 'vllm']);
  });
});

describe('a backend without workers', () => {
  it('falls back to the next candidate at once when the last worker of a backend goes away', async () => {
    const worker = stack.services.find((s) => s.name === 'worker-vllm')!;
    await worker.stop();
    try {
      const r = await chat('local');
      expect(r.status).toBe(200);
      expect(r.backend).toBe('ollama');
      // Whichever notices first: the dispatch (no worker) or discovery (vLLM lists no model now).
      expect(r.reason).toMatch(/^alias:local > vllm (no worker|serves no model now) > ollama$/);
    } finally {
      await stack.startService('worker-vllm');
    }
  });
});
