import { afterEach, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '@homelab/testing';

// Each scenario gets its own stack: they break things on purpose.
let stack: TestStack | undefined;
afterEach(async () => { await stack?.[Symbol.asyncDispose](); stack = undefined; });

const body = (model: string, stream = false) => JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello' }], stream });

interface Outcome { status: number; ms: number; complete: boolean; error?: string }
/** One request; `complete` means a whole answer ([DONE] or a chat.completion), `error` an OpenAI error (body or SSE event). */
async function request(url: string, model: string, stream: boolean): Promise<Outcome> {
  const started = Date.now();
  try {
    const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(model, stream) });
    const text = await res.text();
    const errorMatch = /"error":\{"message":"([^"]*)"/.exec(text);
    const complete = res.status === 200 && (stream ? text.endsWith('data: [DONE]\n\n') : text.includes('"chat.completion"'));
    return { status: res.status, ms: Date.now() - started, complete, ...(errorMatch && { error: errorMatch[1] }) };
  } catch (err) {
    return { status: 0, ms: Date.now() - started, complete: false, error: `connection: ${(err as Error).message}` };
  }
}

describe('replicas', () => {
  it('a router replica killed under load: every request succeeds or gets a clear error within its timeout; the rest continue', async () => {
    stack = await startTestStack({ tokens: 20, tokenIntervalMs: 10, services: ['worker-vllm', 'worker-ollama', 'worker-cloud', 'router', 'ingress'] });
    const second = await stack.startService('router');
    const first = stack.services.find((s) => s.name === 'router')!;
    const results: Outcome[] = [];
    let killed = false;
    // 16 clients, 8 requests each, one after the other; the router is killed after the 40th answer.
    await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      for (let n = 0; n < 8; n++) {
        results.push(await request(stack!.ingressUrl, i % 2 ? 'smart' : 'fast', i % 3 === 0));
        if (!killed && results.length >= 40) { killed = true; first.proc.kill('SIGKILL'); }
      }
    }));
    expect(killed).toBe(true);
    const failed = results.filter((r) => !r.complete);
    // Nothing hangs (the test would time out): a request the killed router held ends by the
    // ingress's 10 s silence timeout, as keepalives stop; every failure says why.
    for (const f of failed) expect(f.error, JSON.stringify(f)).toBeTruthy();
    // Only what the killed router had in flight can fail; the other router carries on.
    expect(failed.length, JSON.stringify(failed.slice(0, 5))).toBeLessThanOrEqual(16);
    expect(results).toHaveLength(128);
    expect(results.length - failed.length).toBeGreaterThanOrEqual(128 - 16);
    const after = await request(stack.ingressUrl, 'smart', true);
    expect(after.complete).toBe(true);
    expect(second.proc.exitCode).toBeNull();
  }, 60_000);

  it('NATS restarted under load: requests in flight fail cleanly, new ones succeed after the reconnect', async () => {
    stack = await startTestStack({ tokens: 30, tokenIntervalMs: 20 });
    const inFlight = Array.from({ length: 8 }, (_, i) => request(stack!.ingressUrl, 'smart', i % 2 === 0));
    await new Promise((r) => setTimeout(r, 200));
    await stack.nats.restart({ downMs: 500 });
    const results = await Promise.all(inFlight);
    for (const r of results) {
      // Cut answers end with an explicit error (HTTP error or an SSE error event), never a hang or a silent cut.
      if (!r.complete) expect(r.error, JSON.stringify(r)).toBeTruthy();
      expect(r.ms).toBeLessThan(10_000);
    }
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = (await request(stack.ingressUrl, 'smart', false)).complete;
      if (!ok) await new Promise((r) => setTimeout(r, 200));
    }
    expect(ok).toBe(true);
    const stream = await request(stack.ingressUrl, 'fast', true);
    expect(stream.complete).toBe(true);
  }, 60_000);
});

describe('liveness', () => {
  it('a cold model load longer than the silence timeout is kept alive by keepalives, streamed or not', async () => {
    stack = await startTestStack({ tokens: 4, ollamaColdLoadMs: 5000, ollamaLoaded: ['llama3.2:3b'], silenceTimeoutMs: 3000, backends: { ollama: { firstTokenTimeoutMs: 20000 } } });
    // qwen2.5:32b is not loaded in the simulator: the first request waits for the load.
    const started = Date.now();
    const res = await fetch(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('ollama/qwen2.5:32b', true) });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4900);
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    const json = await request(stack.ingressUrl, 'ollama/nomic-embed-text:latest', false);
    expect(json.ms).toBeGreaterThanOrEqual(4900);
    expect(json.complete).toBe(true);
  }, 60_000);
});

describe('daily cloud budget', () => {
  it('skips cloud candidates once today\'s spend reaches the ceiling, also after a router restart', async () => {
    stack = await startTestStack({
      tokens: 8,
      inferenceYaml: '  aliases:\n    cloudy: [anthropic/claude-haiku-4-5, ollama/llama3.2:3b]',
      // 8 output tokens at 1000 USD per million tokens: 0.008 USD per answer, over a 0.005 ceiling.
      extraYaml: 'routing:\n  policy: ordered\n  cloudDailyBudgetUsd: 0.005\n  prices: { "anthropic/*": { input: 0, output: 1000 } }',
    });
    const first = await fetch(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('cloudy') });
    expect(first.headers.get('x-homelab-backend')).toBe('anthropic');
    let second: Response | undefined;
    for (let i = 0; i < 20; i++) {
      second = await fetch(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('cloudy') });
      if (second.headers.get('x-homelab-backend') === 'ollama') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(second!.headers.get('x-homelab-backend')).toBe('ollama');
    expect(second!.headers.get('x-homelab-route-reason')).toBe('alias:cloudy > anthropic skipped (daily cloud budget reached) > ollama');
    // A new router replays today's events and knows the budget is spent.
    const router = stack.services.find((s) => s.name === 'router')!;
    await router.stop();
    await stack.startService('router');
    const third = await fetch(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('cloudy') });
    expect(third.headers.get('x-homelab-backend')).toBe('ollama');
  }, 60_000);
});
