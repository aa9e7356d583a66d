import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { GatewayError } from '@homelab/bus';
import { simText, startAnthropicSimulator, type AnthropicSimulator } from '@homelab/simulators';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Backend, ChatChunk, ChatRequest, ChunkDeltaWithReasoning } from '../types.ts';
import { createAnthropicBackend } from './index.ts';

const KEY = 'sk-ant-test-0123456789abcdef';
const MODEL = 'claude-haiku-4-5';

let sim: AnthropicSimulator;
let backend: Backend;

beforeAll(async () => {
  sim = await startAnthropicSimulator({ apiKey: KEY, models: [MODEL], tokens: 8, cacheReadInputTokens: 5 });
  backend = createAnthropicBackend({ baseURL: sim.url, apiKey: KEY, models: [MODEL, 'claude-opus-4-8'], timeoutMs: 5_000 });
});
afterAll(() => sim.close());
beforeEach(() => {
  sim.setFaults({});
  sim.setOptions({ tokens: 8, tokenIntervalMs: 0 });
  sim.requests.length = 0;
});

const weatherTool: NonNullable<ChatRequest['tools']>[number] = {
  type: 'function',
  function: { name: 'get_weather', description: 'Get the weather', parameters: { type: 'object', properties: { location: { type: 'string' }, days: { type: 'integer' } }, required: ['location'] } },
};

function call(request: Partial<ChatRequest> = {}, signal = new AbortController().signal) {
  return { request: { model: MODEL, messages: [{ role: 'user' as const, content: 'Hello, Claude' }], ...request } as ChatRequest, requestId: 'req-1', signal };
}

async function collect(stream: AsyncIterable<ChatChunk>): Promise<ChatChunk[]> {
  const chunks: ChatChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

async function failure(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a GatewayError');
}

const deltas = (chunks: ChatChunk[]) => chunks.map((c) => c.choices[0]?.delta as ChunkDeltaWithReasoning | undefined);

describe('anthropic backend against the simulator', () => {
  it('answers a non-streaming request', async () => {
    const completion = await backend.chat(call({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello, Claude' }] }), {});
    expect(completion.object).toBe('chat.completion');
    expect(completion.id).toMatch(/^msg_/);
    expect(completion.model).toBe(MODEL);
    expect(completion.choices[0]).toMatchObject({ finish_reason: 'stop', message: { role: 'assistant', content: simText(8) } });
    expect(completion.usage).toMatchObject({ completion_tokens: 8, prompt_tokens_details: { cached_tokens: 5 } });
    expect(completion.usage!.prompt_tokens).toBeGreaterThan(5);

    const [record] = sim.requests;
    expect(record).toMatchObject({ method: 'POST', path: '/v1/messages', completed: true });
    expect(record!.body).toEqual({
      model: MODEL, max_tokens: 4096, stream: false, system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello, Claude' }] }],
    });
    expect(record!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(record!.headers['anthropic-version']).toBeTruthy();
  });

  it('streams chunks and ends with a usage chunk', async () => {
    const chunks = await collect(backend.chatStream(call({ stream: true }), {}));
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(deltas(chunks).map((d) => d?.content ?? '').join('')).toBe(simText(8));
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
    const short = await backend.chat(call({ max_tokens: 3 }), {});
    expect(short.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: simText(3) } });
    const stopped = await collect(backend.chatStream(call({ stop: [' GPU'] }), {}));
    expect(deltas(stopped).map((d) => d?.content ?? '').join('')).toBe('The lab answers from the local');
    expect(stopped.at(-2)!.choices[0]!.finish_reason).toBe('stop');
  });

  it('makes a tool call and carries the tool result back', async () => {
    const first = await backend.chat(call({ tools: [weatherTool], tool_choice: 'required' }), {});
    const choice = first.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    const toolCall = choice.message.tool_calls![0]!;
    expect(toolCall).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(toolCall.id).toMatch(/^toolu_/);
    expect(JSON.parse((toolCall as { function: { arguments: string } }).function.arguments)).toEqual({ location: 'sim-location', days: 42 });
    expect((sim.requests[0]!.body as { tool_choice: unknown }).tool_choice).toEqual({ type: 'any' });

    const second = await backend.chat(call({
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [toolCall] },
        { role: 'tool', tool_call_id: toolCall.id, content: 'sunny, 24°C' },
      ],
    }), {});
    expect(second.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: simText(8) } });
    const sent = sim.requests[1]!.body as { messages: Array<{ role: string; content: unknown[] }> };
    expect(sent.messages[1]!.content).toEqual([{ type: 'tool_use', id: toolCall.id, name: 'get_weather', input: { location: 'sim-location', days: 42 } }]);
    expect(sent.messages[2]).toEqual({ role: 'user', content: [{ type: 'tool_result', tool_use_id: toolCall.id, content: 'sunny, 24°C' }] });
  });

  it('streams a tool call whose arguments arrive in several chunks', async () => {
    const chunks = await collect(backend.chatStream(call({ tools: [weatherTool] }), {}));
    const calls = deltas(chunks).flatMap((d) => d?.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather', arguments: '' } });
    expect(calls[0]!.id).toMatch(/^toolu_/);
    const parts = calls.slice(1).map((c) => c.function!.arguments!);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    expect(JSON.parse(parts.join(''))).toEqual({ location: 'sim-location', days: 42 });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('thinks when reasoning_effort is set', async () => {
    const completion = await backend.chat(call({ reasoning_effort: 'low' }), {});
    expect((completion.choices[0]!.message as { reasoning_content?: string }).reasoning_content).toBe('Let me think about this request.');
    expect(completion.choices[0]!.message.content).toBe(simText(8));
    expect((sim.requests[0]!.body as { thinking: unknown }).thinking).toEqual({ type: 'enabled', budget_tokens: 1024 });

    const chunks = await collect(backend.chatStream(call({ reasoning_effort: 'medium' }), {}));
    expect(deltas(chunks).map((d) => d?.reasoning_content ?? '').join('')).toBe('Let me think about this request.');
    expect(deltas(chunks).map((d) => d?.content ?? '').join('')).toBe(simText(8));
    expect(sim.requests[1]!.body).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 4096 }, max_tokens: 8192 });
  });

  it('lists the configured models and refuses embeddings', async () => {
    expect(await backend.listModels(new AbortController().signal)).toEqual([{ id: MODEL }, { id: 'claude-opus-4-8' }]);
    const err = await failure(backend.embed({ request: { model: MODEL, input: 'x' }, requestId: 'r', signal: new AbortController().signal }));
    expect(err.code).toBe('invalid_request');
    expect(sim.requests).toHaveLength(0);
  });
});

describe('anthropic backend errors', () => {
  it('429 → rate_limited with retryAfterMs from retry-after', async () => {
    sim.setFaults({ status: 429, retryAfterSeconds: 7 });
    const err = await failure(backend.chat(call(), {}));
    expect([err.code, err.retryable, err.retryAfterMs]).toEqual(['rate_limited', true, 7000]);
    expect(err.message).toContain('rate limit');
  });

  it('529 → backend_unavailable, retryable; 500 → backend_error', async () => {
    sim.setFaults({ status: 529 });
    const overloaded = await failure(backend.chat(call(), {}));
    expect([overloaded.code, overloaded.retryable]).toEqual(['backend_unavailable', true]);
    sim.setFaults({ status: 500 });
    const streamed = await failure(collect(backend.chatStream(call(), {})));
    expect([streamed.code, streamed.retryable]).toEqual(['backend_error', true]);
  });

  it('401 → unauthorized without the key in the message', async () => {
    const wrongKey = 'sk-ant-wrong-key-42';
    const other = createAnthropicBackend({ baseURL: sim.url, apiKey: wrongKey, models: [MODEL] });
    const err = await failure(other.chat(call(), {}));
    expect([err.code, err.status, err.retryable]).toEqual(['unauthorized', 401, false]);
    expect(err.message).not.toContain(wrongKey);
    expect(JSON.stringify(err.toOpenAI())).not.toContain(wrongKey);
  });

  it('404 → model_not_found; 400 → invalid_request with Anthropic’s message', async () => {
    const missing = await failure(backend.chat(call({ model: 'claude-nonexistent' }), {}));
    expect([missing.code, missing.message]).toEqual(['model_not_found', 'model: claude-nonexistent']);
    const bad = await failure(backend.chat(call({ messages: [{ role: 'assistant', content: 'I start' }] }), {}));
    expect([bad.code, bad.retryable, bad.message]).toEqual(['invalid_request', false, 'messages: first message must use the "user" role']);
  });

  it('connection refused → backend_unavailable', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const closed = createAnthropicBackend({ baseURL: `http://127.0.0.1:${port}`, apiKey: KEY, models: [MODEL] });
    const err = await failure(closed.chat(call(), {}));
    expect([err.code, err.retryable]).toEqual(['backend_unavailable', true]);
    const streamed = await failure(collect(closed.chatStream(call(), {})));
    expect(streamed.code).toBe('backend_unavailable');
  });

  it('a stall past the timeout → timeout', async () => {
    sim.setFaults({ stallBeforeFirstTokenMs: 2_000 });
    const impatient = createAnthropicBackend({ baseURL: sim.url, apiKey: KEY, models: [MODEL], timeoutMs: 200 });
    const err = await failure(impatient.chat(call(), {}));
    expect([err.code, err.retryable]).toEqual(['timeout', true]);
  });

  it('an error event mid-stream → GatewayError after the content already sent', async () => {
    sim.setFaults({ errorEventAfterChunks: 3 });
    const chunks: ChatChunk[] = [];
    const err = await failure((async () => { for await (const c of backend.chatStream(call(), {})) chunks.push(c); })());
    expect([err.code, err.retryable, err.contentSent]).toEqual(['backend_unavailable', true, true]);
    expect(err.message).toContain('Overloaded');
    expect(deltas(chunks).map((d) => d?.content ?? '').join('')).toBe(simText(3));

    sim.setFaults({ errorEventAfterChunks: 0, errorEventType: 'rate_limit_error' });
    expect((await failure(collect(backend.chatStream(call(), {})))).code).toBe('rate_limited');
  });

  it('a connection dropped mid-stream → backend_error', async () => {
    sim.setFaults({ dropAfterChunks: 2 });
    const chunks: ChatChunk[] = [];
    const err = await failure((async () => { for await (const c of backend.chatStream(call(), {})) chunks.push(c); })());
    expect([err.code, err.contentSent]).toEqual(['backend_error', true]);
    expect(deltas(chunks).map((d) => d?.content ?? '').join('')).toBe(simText(2));
  });

  it('a malformed event → backend_error', async () => {
    sim.setFaults({ malformedAfterChunks: 1 });
    const err = await failure(collect(backend.chatStream(call(), {})));
    expect([err.code, err.message]).toEqual(['backend_error', 'malformed stream from anthropic']);
  });

  it('abort via the signal → cancelled, and the simulator sees the client go away', async () => {
    sim.setOptions({ tokens: 200, tokenIntervalMs: 20 });
    const controller = new AbortController();
    const chunks: ChatChunk[] = [];
    const err = await failure((async () => {
      for await (const c of backend.chatStream(call({}, controller.signal), {})) {
        chunks.push(c);
        if (c.choices[0]?.delta.content) controller.abort();
      }
    })());
    expect(err.code).toBe('cancelled');
    await expect.poll(() => sim.requests[0]?.aborted, { timeout: 2_000 }).toBe(true);
    expect(sim.requests[0]!.completed).toBe(false);

    const early = new AbortController();
    early.abort();
    expect((await failure(backend.chat(call({}, early.signal), {}))).code).toBe('cancelled');
  });
});
