import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ChatChunk, ChatRequest } from '@homelab/dialects';
import { simText, startAnthropicSimulator, type AnthropicSimulator } from '@homelab/simulators';
import { completeInternal, streamInternal } from '../internal.ts';
import { answerText, backendCall, chat, collectChunks, contentOf, deltasOf, everythingOf, gatewayError, internalCall, reasoningOf } from '../testkit.ts';
import type { Backend } from '../types.ts';
import { createAnthropicBackend, type AnthropicBackendOptions } from './index.ts';

const KEY = 'sk-ant-test-0123456789abcdef';
const MODEL = 'claude-haiku-4-5';

let sim: AnthropicSimulator;
let backend: Backend;

function anthropicAt(url: string, options: Partial<AnthropicBackendOptions> = {}): Backend {
  return createAnthropicBackend({ baseURL: url, apiKey: KEY, models: [MODEL, 'claude-opus-4-8'], connectTimeoutMs: 2000, idleTimeoutMs: 10_000, ...options });
}

beforeAll(async () => {
  sim = await startAnthropicSimulator({ apiKey: KEY, models: [MODEL], tokens: 8, cacheReadInputTokens: 5 });
  backend = anthropicAt(sim.url);
});
afterAll(async () => {
  await backend.close();
  await sim.close();
});
beforeEach(() => {
  sim.setFaults({});
  sim.setOptions({ tokens: 8, tokenIntervalMs: 0 });
  sim.requests.length = 0;
});

const weatherTool: NonNullable<ChatRequest['tools']>[number] = {
  type: 'function',
  function: { name: 'get_weather', description: 'Get the weather', parameters: { type: 'object', properties: { location: { type: 'string' }, days: { type: 'integer' } }, required: ['location'] } },
};

const request = (fields: Partial<ChatRequest> & Record<string, unknown> = {}) => chat({ messages: [{ role: 'user', content: 'Hello, Claude' }], ...fields });

describe('Anthropic backend through the internal form', () => {
  it('answers a whole request, with the SDK’s authentication and version header', async () => {
    const completion = await completeInternal(backend, request({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello, Claude' }] }), internalCall(MODEL));
    expect(completion.object).toBe('chat.completion');
    expect(completion.id).toMatch(/^msg_/);
    expect(completion.model).toBe(MODEL);
    expect(completion.choices[0]).toMatchObject({ finish_reason: 'stop', message: { role: 'assistant', content: simText(8) } });
    expect(completion.usage).toMatchObject({ completion_tokens: 8, prompt_tokens_details: { cached_tokens: 5 } });
    expect(completion.usage!.prompt_tokens).toBeGreaterThan(5);

    const [record] = sim.requests;
    expect(record).toMatchObject({ method: 'POST', path: '/v1/messages', completed: true });
    // The backend's default max_tokens, since the client set none.
    expect(record!.body).toEqual({
      model: MODEL, max_tokens: 4096, stream: false, system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello, Claude' }] }],
    });
    expect(record!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(record!.headers['anthropic-version']).toBeTruthy();
  });

  it("the lab's default max_tokens is configurable", async () => {
    const short = anthropicAt(sim.url, { defaultMaxTokens: 2 });
    const completion = await completeInternal(short, request(), internalCall(MODEL));
    expect(completion.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: simText(2) } });
    expect(sim.requests[0]!.body).toMatchObject({ max_tokens: 2 });
  });

  it('streams chunks and ends with a usage chunk', async () => {
    const chunks = await collectChunks(streamInternal(backend, request(), internalCall(MODEL)));
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(contentOf(chunks)).toBe(simText(8));
    expect(chunks.filter((c) => c.choices[0]?.delta.content)).toHaveLength(8);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ completion_tokens: 8, prompt_tokens_details: { cached_tokens: 5, cache_write_tokens: 0 } });
    expect(last.usage!.total_tokens).toBe(last.usage!.prompt_tokens + 8);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect((sim.requests[0]!.body as { stream: boolean }).stream).toBe(true);
  });

  it('honours max_tokens and stop sequences', async () => {
    const short = await completeInternal(backend, request({ max_tokens: 3 }), internalCall(MODEL));
    expect(short.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: simText(3) } });
    const stopped = await collectChunks(streamInternal(backend, request({ stop: [' GPU'] }), internalCall(MODEL)));
    expect(contentOf(stopped)).toBe('The lab answers from the local');
    expect(stopped.at(-2)!.choices[0]!.finish_reason).toBe('stop');
  });

  it('makes a tool call and carries the tool result back', async () => {
    const first = await completeInternal(backend, request({ tools: [weatherTool], tool_choice: 'required' }), internalCall(MODEL));
    const choice = first.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    const toolCall = choice.message.tool_calls![0]!;
    expect(toolCall).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(toolCall.id).toMatch(/^toolu_/);
    expect(JSON.parse((toolCall as { function: { arguments: string } }).function.arguments)).toEqual({ location: 'sim-location', days: 42 });
    expect((sim.requests[0]!.body as { tool_choice: unknown }).tool_choice).toEqual({ type: 'any' });

    const second = await completeInternal(backend, request({
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [toolCall] },
        { role: 'tool', tool_call_id: toolCall.id, content: 'sunny, 24°C' },
      ],
    }), internalCall(MODEL));
    expect(second.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: simText(8) } });
    const sent = sim.requests[1]!.body as { messages: { role: string; content: unknown[] }[] };
    expect(sent.messages[1]!.content).toEqual([{ type: 'tool_use', id: toolCall.id, name: 'get_weather', input: { location: 'sim-location', days: 42 } }]);
    expect(sent.messages[2]).toEqual({ role: 'user', content: [{ type: 'tool_result', tool_use_id: toolCall.id, content: 'sunny, 24°C' }] });
  });

  it('streams a tool call whose arguments arrive in several chunks', async () => {
    const chunks = await collectChunks(streamInternal(backend, request({ tools: [weatherTool] }), internalCall(MODEL)));
    const calls = deltasOf(chunks).flatMap((d) => d?.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather', arguments: '' } });
    expect(calls[0]!.id).toMatch(/^toolu_/);
    const parts = calls.slice(1).map((c) => c.function!.arguments!);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    expect(JSON.parse(parts.join(''))).toEqual({ location: 'sim-location', days: 42 });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('JSON mode is asked for in the system prompt', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
    await completeInternal(backend, request({ response_format: { type: 'json_schema', json_schema: { name: 'place', schema } } }), internalCall(MODEL));
    const system = (sim.requests[0]!.body as { system: string }).system;
    expect(system).toContain('Reply with a single valid JSON object');
    expect(system).toContain(JSON.stringify(schema));
  });

  it('thinks when reasoning_effort is set', async () => {
    const completion = await completeInternal(backend, request({ reasoning_effort: 'low' }), internalCall(MODEL));
    expect((completion.choices[0]!.message as { reasoning_content?: string }).reasoning_content).toBe('Let me think about this request.');
    expect(completion.choices[0]!.message.content).toBe(simText(8));
    expect((sim.requests[0]!.body as { thinking: unknown }).thinking).toEqual({ type: 'enabled', budget_tokens: 1024 });

    const chunks = await collectChunks(streamInternal(backend, request({ reasoning_effort: 'medium' }), internalCall(MODEL)));
    expect(reasoningOf(chunks)).toBe('Let me think about this request.');
    expect(contentOf(chunks)).toBe(simText(8));
    expect(sim.requests[1]!.body).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 4096 }, max_tokens: 8192 });
  });

  it('lists the configured models and refuses embeddings without a request', async () => {
    expect(await backend.listModels(new AbortController().signal)).toEqual([{ id: MODEL }, { id: 'claude-opus-4-8' }]);
    const err = await gatewayError(completeInternal(backend, { form: 'embeddings', request: { model: MODEL, input: 'x' } }, internalCall(MODEL)));
    expect(err).toMatchObject({ code: 'unsupported', param: 'model', message: 'anthropic cannot serve embeddings: use a model of another backend' });
    expect(sim.requests).toHaveLength(0);
  });
});

describe('Anthropic backend: pass-through bytes (send)', () => {
  it('the SDK sends the client bytes verbatim, with its authentication and the client’s beta header', async () => {
    const body = new TextEncoder().encode(`{"model": "${MODEL}",\n "max_tokens": 64, "messages": [ {"role": "user", "content": "Hello, Claude"} ], "cache_control": {"type": "ephemeral"} }`);
    const answer = await backend.send(backendCall('anthropic.messages', body, { headers: { 'anthropic-beta': 'context-1m-2025-08-07' } }));
    expect(answer).toMatchObject({ status: 200, contentType: 'application/json' });
    expect(JSON.parse(await answerText(answer))).toMatchObject({ type: 'message', role: 'assistant', model: MODEL, stop_reason: 'end_turn', usage: { cache_read_input_tokens: 5 } });
    const record = sim.requests[0]!;
    expect(record).toMatchObject({ method: 'POST', path: '/v1/messages' });
    expect(record.headers['content-length']).toBe(String(body.length));
    expect(record.body).toEqual(JSON.parse(new TextDecoder().decode(body)));
    expect(record.headers).toMatchObject({ 'anthropic-beta': 'context-1m-2025-08-07', 'user-agent': expect.stringMatching(/^Anthropic\/JS /), 'x-stainless-retry-count': '0' });
    expect(record.headers['anthropic-version']).toBeTruthy();
  });

  it('a stream passes through as Anthropic’s SSE events', async () => {
    const body = { model: MODEL, max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'Hello, Claude' }] };
    const answer = await backend.send(backendCall('anthropic.messages', body));
    expect(answer.contentType).toBe('text/event-stream; charset=utf-8');
    const text = await answerText(answer);
    expect(text.startsWith('event: message_start\ndata: ')).toBe(true);
    expect(text).toContain('event: ping\n');
    expect(text.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n')).toBe(true);
  });

  it('a dialect Anthropic does not speak → invalid_request, nothing sent', async () => {
    const err = await gatewayError(() => backend.send(backendCall('openai.chat', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] })));
    expect(err).toMatchObject({ code: 'invalid_request', message: 'anthropic does not speak openai.chat' });
    expect(sim.requests).toHaveLength(0);
  });
});

describe('Anthropic backend errors', () => {
  it('429 → rate_limited with retryAfterMs from retry-after; the SDK does not retry by itself', async () => {
    sim.setFaults({ status: 429, retryAfterSeconds: 7 });
    const err = await gatewayError(completeInternal(backend, request(), internalCall(MODEL)));
    expect(err).toMatchObject({ code: 'rate_limited', retryable: true, retryAfterMs: 7000, message: 'anthropic is rate limiting: Number of requests has exceeded your rate limit' });
    expect(sim.requests).toHaveLength(1);
  });

  it('529 (overloaded) → backend_unavailable, retryable', async () => {
    sim.setFaults({ status: 529 });
    const overloaded = await gatewayError(completeInternal(backend, request(), internalCall(MODEL)));
    expect(overloaded).toMatchObject({ code: 'backend_unavailable', status: 503, retryable: true });
  });

  it('529 and 500 are retryable; 500 on a stream → backend_error', async () => {
    sim.setFaults({ status: 529 });
    expect((await gatewayError(completeInternal(backend, request(), internalCall(MODEL)))).retryable).toBe(true);
    sim.setFaults({ status: 500 });
    const streamed = await gatewayError(collectChunks(streamInternal(backend, request(), internalCall(MODEL))));
    expect(streamed).toMatchObject({ code: 'backend_error', retryable: true, message: 'anthropic failed with 500: Internal server error' });
  });

  it('401 → unauthorized without the key anywhere', async () => {
    const wrongKey = 'sk-ant-wrong-key-42';
    const other = createAnthropicBackend({ baseURL: sim.url, apiKey: wrongKey, models: [MODEL], connectTimeoutMs: 2000, idleTimeoutMs: 10_000 });
    const err = await gatewayError(completeInternal(other, request(), internalCall(MODEL)));
    expect(err).toMatchObject({ code: 'unauthorized', status: 401, retryable: false, message: "anthropic rejected the gateway's credentials (401)" });
    expect(everythingOf(err)).not.toContain(wrongKey);
  });

  it('404 → model_not_found; 400 → invalid_request, in Anthropic’s own words (Claude Code acts on some)', async () => {
    const missing = await gatewayError(completeInternal(backend, request(), internalCall('claude-nonexistent')));
    expect(missing).toMatchObject({ code: 'model_not_found', message: 'model: claude-nonexistent' });
    const bad = await gatewayError(completeInternal(backend, request({ messages: [{ role: 'assistant', content: 'I start' }] }), internalCall(MODEL)));
    expect(bad).toMatchObject({ code: 'invalid_request', retryable: false, message: 'messages: first message must use the "user" role' });
  });

  it('connection refused → backend_unavailable', async () => {
    const closedSim = await startAnthropicSimulator();
    await closedSim.close();
    const closed = anthropicAt(closedSim.url);
    expect(await gatewayError(completeInternal(closed, request(), internalCall(MODEL)))).toMatchObject({ code: 'backend_unavailable', retryable: true, message: 'anthropic is unreachable: ECONNREFUSED' });
    expect((await gatewayError(collectChunks(streamInternal(closed, request(), internalCall(MODEL))))).code).toBe('backend_unavailable');
  });

  it('a stall past headersTimeoutMs → timeout', async () => {
    sim.setFaults({ stallBeforeFirstTokenMs: 10_000 });
    const err = await gatewayError(completeInternal(backend, request(), internalCall(MODEL, { headersTimeoutMs: 200 })));
    expect(err).toMatchObject({ code: 'timeout', retryable: true, message: 'anthropic did not answer within 200 ms' });
  });

  it('a stream that goes silent longer than the idle timeout → timeout', async () => {
    // The stall comes after message_start and the first content_block_start.
    sim.setFaults({ stallBeforeFirstTokenMs: 10_000 });
    const impatient = anthropicAt(sim.url, { idleTimeoutMs: 100 });
    const err = await gatewayError(collectChunks(streamInternal(impatient, request(), internalCall(MODEL, { bodyTimeoutMs: 100 }))));
    expect(err).toMatchObject({ code: 'timeout', message: 'anthropic sent nothing for 100 ms' });
  });

  it('an error event mid-stream → GatewayError after the content already sent', async () => {
    sim.setFaults({ errorEventAfterChunks: 3 });
    const received: ChatChunk[] = [];
    const err = await gatewayError(collectChunks(streamInternal(backend, request(), internalCall(MODEL)), received));
    expect(err).toMatchObject({ code: 'backend_unavailable', retryable: true, message: 'anthropic: Overloaded' });
    expect(simText(3).startsWith(contentOf(received))).toBe(true);

    sim.setFaults({ errorEventAfterChunks: 0, errorEventType: 'rate_limit_error' });
    expect((await gatewayError(collectChunks(streamInternal(backend, request(), internalCall(MODEL))))).code).toBe('rate_limited');
  });

  it('a connection dropped mid-stream → backend_error', async () => {
    sim.setFaults({ dropAfterChunks: 2 });
    const received: ChatChunk[] = [];
    const err = await gatewayError(collectChunks(streamInternal(backend, request(), internalCall(MODEL)), received));
    expect(err).toMatchObject({ code: 'backend_error', message: 'anthropic closed the connection mid-answer' });
    expect(contentOf(received)).toBe(simText(2));
  });

  it('a malformed event → backend_error', async () => {
    sim.setFaults({ malformedAfterChunks: 1 });
    const err = await gatewayError(collectChunks(streamInternal(backend, request(), internalCall(MODEL))));
    expect(err).toMatchObject({ code: 'backend_error', message: 'anthropic sent a malformed stream event' });
  });

  it('a whole answer that is not JSON → backend_error', async () => {
    sim.setFaults({ malformedAfterChunks: 0 });
    expect(await gatewayError(completeInternal(backend, request(), internalCall(MODEL)))).toMatchObject({ code: 'backend_error', message: 'anthropic sent a malformed answer' });
  });

  it('an abort via the signal → cancelled, and the simulator sees the client go away', async () => {
    sim.setOptions({ tokens: 200, tokenIntervalMs: 20 });
    const controller = new AbortController();
    const err = await gatewayError(async () => {
      for await (const chunks of streamInternal(backend, request(), internalCall(MODEL, { signal: controller.signal }))) {
        if (contentOf(chunks as ChatChunk[])) controller.abort();
      }
    });
    expect(err.code).toBe('cancelled');
    await expect.poll(() => sim.requests[0]?.aborted).toBe(true);
    expect(sim.requests[0]!.completed).toBe(false);

    const early = new AbortController();
    early.abort();
    expect((await gatewayError(completeInternal(backend, request(), internalCall(MODEL, { signal: early.signal })))).code).toBe('cancelled');
  });
});
