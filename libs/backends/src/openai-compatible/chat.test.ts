import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import { embeddingVector, simText, simToken, startOpenAISimulator, type OpenAISimulatorOptions, type Simulator } from '@homelab/simulators';
import type { Backend, ChatCall, ChatChunk, ChatRequest } from '../types.ts';
import { createOpenAICompatibleBackend, toNonStreamingRequest, toStreamingRequest } from './index.ts';

const USER: ChatRequest['messages'] = [{ role: 'user', content: 'What is the weather in Paris today?' }];
const WEATHER_TOOL = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] },
  },
};

let sim: Simulator | undefined;
afterEach(async () => { await sim?.close(); sim = undefined; });

async function setup(options: OpenAISimulatorOptions = {}, backendOptions: { apiKey?: string; timeoutMs?: number } = {}): Promise<Backend> {
  sim = await startOpenAISimulator({ models: ['m1'], tokens: 5, ...options });
  return createOpenAICompatibleBackend({ provider: 'vllm', baseURL: `${sim.url}/v1`, apiKey: backendOptions.apiKey ?? 'EMPTY', timeoutMs: backendOptions.timeoutMs });
}

function call(request: Partial<ChatRequest> = {}, signal: AbortSignal = new AbortController().signal): ChatCall {
  return { request: { model: 'm1', messages: USER, ...request } as ChatRequest, requestId: 'req-1', signal };
}

async function collect(stream: AsyncIterable<ChatChunk>): Promise<ChatChunk[]> {
  const chunks: ChatChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

/** Runs `fn` and returns the GatewayError it must throw. */
async function gatewayError(fn: () => Promise<unknown>): Promise<GatewayError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a GatewayError');
}

describe('request mapping', () => {
  it('streaming always asks for usage and keeps the client stream_options', () => {
    const request = { model: 'm', messages: USER, stream_options: { include_obfuscation: false } } as ChatRequest;
    expect(toStreamingRequest(request)).toEqual({ model: 'm', messages: USER, stream: true, stream_options: { include_obfuscation: false, include_usage: true } });
    expect(toStreamingRequest({ model: 'm', messages: USER, stream_options: { include_usage: false } }).stream_options).toEqual({ include_usage: true });
  });

  it('non-streaming drops stream_options (both servers reject it without stream)', () => {
    expect(toNonStreamingRequest({ model: 'm', messages: USER, stream: true, stream_options: { include_usage: true } })).toEqual({ model: 'm', messages: USER, stream: false });
  });
});

describe('OpenAI-compatible backend against the simulator', () => {
  it('chat(): one non-streaming completion; unknown fields pass through', async () => {
    const backend = await setup();
    const completion = await backend.chat(call({ temperature: 0.2, top_k: 5, stream: true, stream_options: { include_usage: true } } as Partial<ChatRequest>), {});
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]!.message.content).toBe(simText(5));
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    expect(completion.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 });
    const body = sim!.requests[0]!.body as Record<string, unknown>;
    expect(body).toMatchObject({ model: 'm1', stream: false, temperature: 0.2, top_k: 5 });
    expect(body).not.toHaveProperty('stream_options');
  });

  it('chatStream(): chunks in order, the last one carries usage with choices []', async () => {
    const backend = await setup();
    const chunks = await collect(backend.chatStream(call({ stream_options: { continuous_usage_stats: false } } as Partial<ChatRequest>), {}));
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.slice(1, 6).map((c) => c.choices[0]!.delta.content)).toEqual([0, 1, 2, 3, 4].map(simToken));
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 });
    expect(sim!.requests[0]!.body).toMatchObject({ stream: true, stream_options: { include_usage: true, continuous_usage_stats: false } });
  });

  it('chatStream(): keeps vLLM reasoning_content', async () => {
    const backend = await setup({ reasoningTokens: 2 });
    const chunks = await collect(backend.chatStream(call(), {}));
    const deltas = chunks.map((c) => c.choices[0]?.delta as { reasoning_content?: string; content?: string } | undefined);
    expect(deltas[1]).toEqual({ reasoning_content: simToken(0) });
    expect(deltas[2]).toEqual({ reasoning_content: simToken(1) });
    expect(deltas[3]).toEqual({ content: simToken(0) });
  });

  it('tools round trip: a tool call, then the tool result gives text (chat and chatStream)', async () => {
    const backend = await setup();
    const first = await backend.chat(call({ tools: [WEATHER_TOOL] }), {});
    const toolCall = first.choices[0]!.message.tool_calls![0]!;
    expect(first.choices[0]!.finish_reason).toBe('tool_calls');
    expect(toolCall.type).toBe('function');
    if (toolCall.type !== 'function') throw new Error('unreachable');
    expect(toolCall.function.name).toBe('get_weather');
    expect(JSON.parse(toolCall.function.arguments)).toEqual({ city: 'sim', unit: 'celsius' });

    const streamed = await collect(backend.chatStream(call({ tools: [WEATHER_TOOL] }), {}));
    const pieces = streamed.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(pieces[0]).toMatchObject({ index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather', arguments: '' } });
    expect(pieces.length).toBeGreaterThanOrEqual(4);
    expect(JSON.parse(pieces.map((p) => p.function?.arguments ?? '').join(''))).toEqual({ city: 'sim', unit: 'celsius' });
    expect(streamed.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');

    const messages: ChatRequest['messages'] = [...USER, first.choices[0]!.message, { role: 'tool', tool_call_id: toolCall.id, content: '{"temperature":21}' }];
    const answer = await backend.chat(call({ tools: [WEATHER_TOOL], messages }), {});
    expect(answer.choices[0]!.message.content).toBe(simText(5));
    expect(answer.choices[0]!.finish_reason).toBe('stop');
    expect((sim!.requests.at(-1)!.body as { messages: unknown[] }).messages).toHaveLength(3);
  });

  it('JSON mode: the content parses to the schema\'s required properties', async () => {
    const backend = await setup();
    const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
    const completion = await backend.chat(call({ response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } }), {});
    expect(JSON.parse(completion.choices[0]!.message.content!)).toEqual({ name: 'sim', age: 1 });
    const chunks = await collect(backend.chatStream(call({ response_format: { type: 'json_object' } }), {}));
    expect(JSON.parse(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''))).toEqual({ answer: simText(5) });
  });

  it('embed(): vectors decoded from the SDK\'s base64 default; explicit float passes through', async () => {
    const backend = await setup();
    const signal = new AbortController().signal;
    const result = await backend.embed({ request: { model: 'm1', input: ['hello world', 'lab'] }, requestId: 'r', signal });
    expect(result.data.map((d) => d.embedding)).toEqual([embeddingVector('hello world'), embeddingVector('lab')]);
    expect(result.usage).toMatchObject({ prompt_tokens: 3, total_tokens: 3 });
    expect(sim!.requests[0]!.body).toMatchObject({ encoding_format: 'base64' });
    const floats = await backend.embed({ request: { model: 'm1', input: 'lab', encoding_format: 'float' }, requestId: 'r', signal });
    expect(floats.data[0]!.embedding).toEqual(embeddingVector('lab'));
  });

  it('listModels(): the served models with their creation time', async () => {
    const backend = await setup({ models: ['qwen', 'llama'] });
    const models = await backend.listModels(new AbortController().signal);
    expect(models).toEqual([{ id: 'qwen', created: expect.any(Number) }, { id: 'llama', created: expect.any(Number) }]);
    expect(sim!.requests[0]).toMatchObject({ method: 'GET', path: '/v1/models' });
  });
});

describe('error mapping', () => {
  it('500 → backend_error (502), naming the upstream status', async () => {
    const backend = await setup({ faults: { status: 500 } });
    const err = await gatewayError(() => backend.chat(call(), {}));
    expect(err).toMatchObject({ code: 'backend_error', status: 502, retryable: true });
    expect(err.message).toContain('failed with 500');
    expect(err.message).toContain('Internal Server Error');
  });

  it('502 from a stream request → backend_error 502', async () => {
    const backend = await setup({ faults: { status: 502 } });
    const err = await gatewayError(() => collect(backend.chatStream(call(), {})));
    expect(err).toMatchObject({ code: 'backend_error', status: 502, contentSent: false });
  });

  it('503 → backend_unavailable with the Retry-After hint', async () => {
    const backend = await setup({ faults: { status: 503, retryAfterSeconds: 2 } });
    const err = await gatewayError(() => backend.chat(call(), {}));
    expect(err).toMatchObject({ code: 'backend_unavailable', status: 503, retryable: true, retryAfterMs: 2000 });
  });

  it('429 → rate_limited with retryAfterMs from Retry-After (chat, stream, embed)', async () => {
    const backend = await setup({ faults: { status: 429, retryAfterSeconds: 3 } });
    expect(await gatewayError(() => backend.chat(call(), {}))).toMatchObject({ code: 'rate_limited', status: 429, retryable: true, retryAfterMs: 3000 });
    expect(await gatewayError(() => collect(backend.chatStream(call(), {})))).toMatchObject({ code: 'rate_limited', retryAfterMs: 3000 });
    const signal = new AbortController().signal;
    expect(await gatewayError(() => backend.embed({ request: { model: 'm1', input: 'x' }, requestId: 'r', signal }))).toMatchObject({ code: 'rate_limited' });
    // The SDK must not retry by itself: three calls, three requests.
    expect(sim!.requests).toHaveLength(3);
  });

  it('401 → unauthorized, and the key appears nowhere in the error', async () => {
    const key = 'sk-wrong-key-98765';
    sim = await startOpenAISimulator({ flavor: 'openai', models: ['m1'], apiKey: 'sk-right-key-00000' });
    const backend = createOpenAICompatibleBackend({ provider: 'openai', baseURL: `${sim.url}/v1`, apiKey: key });
    const err = await gatewayError(() => backend.chat(call(), {}));
    expect(err).toMatchObject({ code: 'unauthorized', status: 401, retryable: false });
    expect(err.message).toBe("openai rejected the gateway's API key (401)");
    // OpenAI's own message echoes the key's tail: it must not travel, not even in the cause.
    expect(sim.requests[0]!.headers.authorization).toBe(`Bearer ${key}`);
    expect(JSON.stringify({ ...err, message: err.message, cause: err.cause })).not.toMatch(/98765|wrong-key/);
  });

  it('404 → model_not_found with the upstream message', async () => {
    const backend = await setup();
    const err = await gatewayError(() => backend.chat(call({ model: 'nope' }), {}));
    expect(err).toMatchObject({ code: 'model_not_found', status: 404, retryable: false });
    expect(err.message).toContain('The model `nope` does not exist.');
  });

  it('400 → invalid_request with the upstream message, in both vLLM error shapes', async () => {
    for (const legacyErrors of [false, true]) {
      const backend = await setup({ legacyErrors });
      const err = await gatewayError(() => backend.chat(call({ messages: undefined }), {}));
      expect(err).toMatchObject({ code: 'invalid_request', status: 400, retryable: false, param: 'messages' });
      expect(err.message).toContain("'loc': ('body', 'messages')");
      await sim!.close();
    }
  });

  it('connection refused on a closed port → backend_unavailable', async () => {
    const closed = await startOpenAISimulator({});
    await closed.close();
    const backend = createOpenAICompatibleBackend({ provider: 'vllm', baseURL: `${closed.url}/v1`, apiKey: 'EMPTY' });
    const err = await gatewayError(() => backend.chat(call(), {}));
    expect(err).toMatchObject({ code: 'backend_unavailable', retryable: true });
    expect(err.message).toBe('vllm is unreachable: ECONNREFUSED');
    expect(await gatewayError(() => backend.listModels(new AbortController().signal))).toMatchObject({ code: 'backend_unavailable' });
  });

  it('no answer within timeoutMs → timeout', async () => {
    const backend = await setup({ faults: { stallBeforeFirstTokenMs: 2000 } }, { timeoutMs: 100 });
    const err = await gatewayError(() => backend.chat(call(), {}));
    expect(err).toMatchObject({ code: 'timeout', status: 504, retryable: true });
  });

  it('a malformed chunk mid-stream → backend_error saying the stream was malformed', async () => {
    const backend = await setup({ faults: { malformedAfterChunks: 2 } });
    const received: ChatChunk[] = [];
    const err = await gatewayError(async () => { for await (const c of backend.chatStream(call(), {})) received.push(c); });
    expect(err).toMatchObject({ code: 'backend_error', retryable: true, contentSent: true });
    expect(err.message).toContain('malformed stream');
    expect(received.map((c) => c.choices[0]!.delta.content)).toEqual(['', simToken(0), simToken(1)]);
  });

  it('a malformed non-streaming body → backend_error', async () => {
    const backend = await setup({ faults: { malformedAfterChunks: 0 } });
    expect(await gatewayError(() => backend.chat(call(), {}))).toMatchObject({ code: 'backend_error', contentSent: false });
  });

  it('a connection dropped mid-stream → backend_error with contentSent', async () => {
    const backend = await setup({ faults: { dropAfterChunks: 2 } });
    const received: ChatChunk[] = [];
    const err = await gatewayError(async () => { for await (const c of backend.chatStream(call(), {})) received.push(c); });
    expect(err).toMatchObject({ code: 'backend_error', contentSent: true });
    expect(err.message).toBe('vllm closed the connection mid-answer');
    expect(received).toHaveLength(3);
  });

  it('abort via signal mid-stream → cancelled, and the backend request is aborted', async () => {
    const backend = await setup({ tokens: 200, tokenIntervalMs: 10 });
    const controller = new AbortController();
    let received = 0;
    const err = await gatewayError(async () => {
      for await (const _chunk of backend.chatStream(call({}, controller.signal), {})) if (++received === 3) controller.abort();
    });
    expect(err).toMatchObject({ code: 'cancelled', status: 499, retryable: false });
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
    expect(sim!.requests[0]!.completed).toBe(false);
  });

  it('abort via signal during a non-streaming call → cancelled, the simulator sees the abort', async () => {
    const backend = await setup({ faults: { stallBeforeFirstTokenMs: 5000 } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    expect(await gatewayError(() => backend.chat(call({}, controller.signal), {}))).toMatchObject({ code: 'cancelled' });
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
  });

  it('breaking out of the stream early aborts the backend request', async () => {
    const backend = await setup({ tokens: 200, tokenIntervalMs: 10 });
    for await (const chunk of backend.chatStream(call(), {})) if (chunk.choices[0]?.delta.content) break;
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
  });
});
