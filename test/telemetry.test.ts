import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '@homelab/testing';
import { chat, embed, promtoolCheckMetrics, sampleSum, startTelemetry, waitFor, type RunningTelemetry } from './telemetry-kit.ts';

// The inference stack on loopback plus the telemetry service; traffic through the simulators.
let stack: TestStack;
let telemetry: RunningTelemetry;

beforeAll(async () => {
  stack = await startTestStack({ tokens: 8 });
  telemetry = await startTelemetry(stack);
}, 90_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });

const applied = (text: string): number => sampleSum(text, 'homelab_telemetry_events_total', { event: 'inferenceCompleted', result: 'applied' });

describe('telemetry service end to end', () => {
  it('turns every finished request into GenAI and gateway metrics, in an exposition promtool accepts', async () => {
    const statuses = [
      await chat(stack, 'fast'), await chat(stack, 'fast'),
      await chat(stack, 'vllm/Qwen/Qwen2.5-7B-Instruct', { stream: true }), await chat(stack, 'smart', { stream: true }),
      await chat(stack, 'gpt-4.1-mini'), await chat(stack, 'claude-haiku-4-5', { stream: true }),
      await embed(stack, 'text-embedding-3-small'),
    ];
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200]);
    // vLLM fails before the first token: the router moves to the next candidate of `smart`.
    stack.sims.vllm.setFaults({ status: 503, failCount: 3 });
    expect(await chat(stack, 'smart')).toBe(200);
    stack.sims.vllm.setFaults({});
    const served = statuses.length + 1;

    let text = '';
    await waitFor(async () => applied(text = await telemetry.scrape()) >= served, 15_000, `${served} inference events applied`);
    expect(sampleSum(text, 'homelab_gateway_requests_total', { status: 'ok' })).toBe(served);
    expect(sampleSum(text, 'homelab_gateway_requests_total', { gen_ai_provider_name: 'ollama', gen_ai_request_model: 'fast', route: 'alias' })).toBe(2);
    expect(sampleSum(text, 'homelab_gateway_requests_total', { gen_ai_provider_name: 'openai', route: 'configured' })).toBe(2);
    expect(sampleSum(text, 'gen_ai_client_operation_duration_count')).toBe(served);
    expect(sampleSum(text, 'gen_ai_client_token_usage_sum', { gen_ai_provider_name: 'vllm', gen_ai_token_type: 'output' })).toBe(16);
    expect(sampleSum(text, 'gen_ai_client_token_usage_count', { gen_ai_operation_name: 'embeddings', gen_ai_token_type: 'input' })).toBe(1);
    // Streamed answers have a time to first token; the three of them.
    expect(sampleSum(text, 'gen_ai_server_time_to_first_token_count')).toBe(3);
    expect(sampleSum(text, 'gen_ai_server_time_to_first_token_bucket', { le: '10' })).toBe(3);
    expect(sampleSum(text, 'gen_ai_server_time_per_output_token_count')).toBe(3);
    expect(sampleSum(text, 'homelab_gateway_overhead_seconds_count')).toBe(served);
    expect(sampleSum(text, 'homelab_gateway_fallbacks_total', { from: 'vllm', to: 'ollama' })).toBe(1);
    expect(sampleSum(text, 'homelab_gateway_requests_total', { fallback: 'true', gen_ai_provider_name: 'ollama', gen_ai_response_model: 'qwen2.5:32b' })).toBe(1);
    expect(sampleSum(text, 'homelab_gateway_circuit_state', { gen_ai_provider_name: 'vllm' })).toBe(0);
    expect(text).toMatch(/^homelab_gateway_cost_usd_total\{gen_ai_provider_name="anthropic",gen_ai_response_model="claude-haiku-4-5"\} 0$/m);
    // The GenAI conventions' bucket boundaries, as exposed.
    expect(text).toContain('gen_ai_client_operation_duration_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="ollama",gen_ai_request_model="fast",gen_ai_response_model="llama3.2:3b",le="81.92"} 2');
    // No request or trace ids, no raw route reasons in any label.
    expect(text).not.toMatch(/req_|[0-9a-f]{32}| > /);

    const check = await promtoolCheckMetrics(text);
    expect(check.output).toBe('');
    expect(check.code).toBe(0);
  });

  it('loses no events: requests served while telemetry is down are counted when it comes back', async () => {
    // Everything so far was applied and acked; then telemetry stops.
    const before = applied(await telemetry.scrape());
    expect(before).toBeGreaterThan(0);
    await telemetry.stop();

    const N = 20;
    for (let i = 0; i < N; i++) expect(await chat(stack, i % 2 ? 'fast' : 'vllm/Qwen/Qwen2.5-7B-Instruct', { stream: i % 3 === 0 })).toBe(200);

    telemetry = await startTelemetry(stack, telemetry.port);
    let text = '';
    await waitFor(async () => applied(text = await telemetry.scrape()) >= N, 15_000, `${N} events after the restart`);
    // A moment more: nothing beyond the N arrives (the earlier events were acked before the stop).
    await new Promise((r) => setTimeout(r, 1000));
    text = await telemetry.scrape();
    expect(applied(text)).toBe(N);
    expect(sampleSum(text, 'homelab_gateway_requests_total')).toBe(N);
    expect(sampleSum(text, 'gen_ai_client_operation_duration_count')).toBe(N);
    expect(sampleSum(text, 'homelab_gateway_requests_total', { gen_ai_request_model: 'fast' })).toBe(N / 2);
  });

  it('reads the real health service: probe results and states; a restarted telemetry starts from its snapshot', async () => {
    await stack.startService('health');
    const vllm = { node: 'ai-node', service: 'vllm', kind: 'vllm' };
    let text = '';
    const ollama = { node: 'ai-node', service: 'ollama', kind: 'ollama' };
    // Both probes of the first round counted (under load one may come a moment after the other).
    await waitFor(async () => {
      text = await telemetry.scrape();
      return sampleSum(text, 'homelab_health_probes_total', { ...vllm, outcome: 'ok' }) >= 1 && sampleSum(text, 'homelab_health_probes_total', { ...ollama, outcome: 'ok' }) >= 1;
    }, 20_000, 'a vLLM and an Ollama probe');
    expect(sampleSum(text, 'homelab_health_state', vllm)).toBe(2);
    expect(sampleSum(text, 'homelab_health_probe_duration_seconds_count', vllm)).toBeGreaterThanOrEqual(1);
    expect(sampleSum(text, 'homelab_telemetry_events_total', { result: 'invalid' })).toBe(0);

    // Probes come every 30 s; a telemetry started now has the states at once, from `health.status`.
    await telemetry.stop();
    telemetry = await startTelemetry(stack, telemetry.port);
    text = await telemetry.scrape();
    expect(sampleSum(text, 'homelab_health_state', vllm)).toBe(2);
    expect(sampleSum(text, 'homelab_health_state', { node: 'ai-node', service: 'ollama' })).toBe(2);
  });
});

// Last: its two aborted requests would change the exact counts of the tests above.
describe('telemetry service: requests in flight', () => {
  it('shows the requests the workers are answering now (homelab_gateway_in_flight, from $SRV.STATS)', async () => {
    stack.sims.vllm.setOptions({ tokens: 60, tokenIntervalMs: 150 });
    const controller = new AbortController();
    const streams = Array.from({ length: 2 }, () => fetch(`${stack.ingressUrl}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal: controller.signal,
      body: JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: [{ role: 'user', content: 'Hi' }], stream: true }),
    }).then((r) => r.text()).catch(() => ''));
    try {
      const vllm = { gen_ai_provider_name: 'vllm' };
      await waitFor(async () => sampleSum(await telemetry.scrape(), 'homelab_gateway_in_flight', vllm) === 2, 12_000, 'two vLLM requests in flight');
    } finally {
      controller.abort();
      stack.sims.vllm.setOptions({ tokens: 8, tokenIntervalMs: 0 });
      await Promise.all(streams);
    }
    await waitFor(async () => sampleSum(await telemetry.scrape(), 'homelab_gateway_in_flight', { gen_ai_provider_name: 'vllm' }) === 0, 12_000, 'none in flight after');
  });
});
