import { afterEach, describe, expect, it } from 'vitest';
import { openAIChat, openAIEmbeddings, type ChatChunk, type ChatRequest } from '@homelab/dialects';
import { embeddingVector, simText, simToken, startOpenAISimulator, startSimServer, type OpenAISimulatorOptions, type Simulator } from '@homelab/simulators';
import { completeInternal, streamInternal } from '../internal.ts';
import {
  USER, WEATHER_TOOL, answerText, backendCall, chat, collectChunks, contentOf, deltasOf, everythingOf, gatewayError, internalCall, jsonBytes, reasoningOf,
} from '../testkit.ts';
import type { Backend } from '../types.ts';
import { createVllmBackend, type VllmBackendOptions } from './index.ts';

const MODEL = 'Qwen/Qwen2.5-7B-Instruct';

let sim: Simulator | undefined;
let backend: Backend | undefined;
afterEach(async () => {
  await backend?.close();
  await sim?.close();
  backend = undefined;
  sim = undefined;
});

async function setup(options: OpenAISimulatorOptions = {}, backendOptions: Partial<VllmBackendOptions> = {}): Promise<Backend> {
  sim = await startOpenAISimulator({ flavor: 'vllm', models: [MODEL], tokens: 5, ...options });
  backend = createVllmBackend({ url: `${sim.url}/`, connectTimeoutMs: 2000, ...backendOptions });
  return backend;
}

const request = (fields: Partial<ChatRequest> & Record<string, unknown> = {}) => chat({ messages: USER, ...fields });
const lastBody = (): Record<string, unknown> => sim!.requests.at(-1)!.body as Record<string, unknown>;

describe('vLLM backend through the internal form', () => {
  it('a whole chat: the backend model is set, unknown fields pass through, stream_options only with a stream', async () => {
    const vllm = await setup();
    expect(vllm.provider).toBe('vllm');
    const completion = await completeInternal(vllm, request({ temperature: 0.2, top_k: 5, stream: true, stream_options: { include_usage: true } }), internalCall(MODEL));
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe(MODEL);
    expect(completion.choices[0]!.message.content).toBe(simText(5));
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    expect(completion.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 });
    const record = sim!.requests[0]!;
    expect(record).toMatchObject({ method: 'POST', path: '/v1/chat/completions', completed: true });
    expect(record.headers['content-type']).toBe('application/json');
    expect(record.body).toEqual({ model: MODEL, messages: USER, stream: false, temperature: 0.2, top_k: 5 });
  });

  it("a stream: chunks in order, usage always asked for and last (choices []), the client's stream_options kept", async () => {
    const vllm = await setup();
    const chunks = await collectChunks(streamInternal(vllm, request({ stream_options: { continuous_usage_stats: false } } as Partial<ChatRequest>), internalCall(MODEL)));
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.slice(1, 6).map((c) => c.choices[0]!.delta.content)).toEqual([0, 1, 2, 3, 4].map(simToken));
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 });
    expect(lastBody()).toMatchObject({ model: MODEL, stream: true, stream_options: { include_usage: true, continuous_usage_stats: false } });
  });

  it("keeps vLLM's reasoning_content, whole and streamed", async () => {
    const vllm = await setup({ reasoningTokens: 2 });
    const chunks = await collectChunks(streamInternal(vllm, request(), internalCall(MODEL)));
    const deltas = deltasOf(chunks);
    expect(deltas[1]).toEqual({ reasoning_content: simToken(0) });
    expect(deltas[2]).toEqual({ reasoning_content: simToken(1) });
    expect(deltas[3]).toEqual({ content: simToken(0) });
    expect(reasoningOf(chunks)).toBe(simText(2));
    const completion = await completeInternal(vllm, request(), internalCall(MODEL));
    expect(completion.choices[0]!.message).toMatchObject({ content: simText(5), reasoning_content: simText(2) });
  });

  it('tools round trip: a tool call (whole and streamed), then the tool result gives text', async () => {
    const vllm = await setup();
    const first = await completeInternal(vllm, request({ tools: [WEATHER_TOOL] }), internalCall(MODEL));
    expect(first.choices[0]!.finish_reason).toBe('tool_calls');
    const toolCall = first.choices[0]!.message.tool_calls![0]!;
    if (toolCall.type !== 'function') throw new Error('expected a function tool call');
    expect(toolCall.function.name).toBe('get_weather');
    expect(JSON.parse(toolCall.function.arguments)).toEqual({ city: 'sim', unit: 'celsius' });

    const streamed = await collectChunks(streamInternal(vllm, request({ tools: [WEATHER_TOOL] }), internalCall(MODEL)));
    const pieces = streamed.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(pieces[0]).toMatchObject({ index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather', arguments: '' } });
    expect(pieces.length).toBeGreaterThanOrEqual(4);
    expect(JSON.parse(pieces.map((p) => p.function?.arguments ?? '').join(''))).toEqual({ city: 'sim', unit: 'celsius' });
    expect(streamed.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');

    const messages: ChatRequest['messages'] = [...USER, first.choices[0]!.message, { role: 'tool', tool_call_id: toolCall.id, content: '{"temperature":21}' }];
    const answer = await completeInternal(vllm, request({ tools: [WEATHER_TOOL], messages }), internalCall(MODEL));
    expect(answer.choices[0]!.message.content).toBe(simText(5));
    expect(answer.choices[0]!.finish_reason).toBe('stop');
    expect((lastBody().messages as unknown[])).toHaveLength(3);
  });

  it("JSON mode: the content parses to the schema's required properties", async () => {
    const vllm = await setup();
    const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
    const completion = await completeInternal(vllm, request({ response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } }), internalCall(MODEL));
    expect(JSON.parse(completion.choices[0]!.message.content!)).toEqual({ name: 'sim', age: 1 });
    const chunks = await collectChunks(streamInternal(vllm, request({ response_format: { type: 'json_object' } }), internalCall(MODEL)));
    expect(JSON.parse(contentOf(chunks))).toEqual({ answer: simText(5) });
  });

  it('embeddings: the internal embeddings form goes to /v1/embeddings', async () => {
    const vllm = await setup();
    const result = await completeInternal(vllm, { form: 'embeddings', request: { model: 'client-name', input: ['hello world', 'lab'] } }, internalCall(MODEL));
    expect(result.data.map((d) => d.embedding)).toEqual([embeddingVector('hello world'), embeddingVector('lab')]);
    expect(result.usage).toMatchObject({ prompt_tokens: 3, total_tokens: 3 });
    expect(sim!.requests[0]).toMatchObject({ path: '/v1/embeddings', body: { model: MODEL, input: ['hello world', 'lab'] } });
  });

  it('listModels(): the served models with their creation time', async () => {
    const vllm = await setup({ models: ['qwen', 'llama'] });
    expect(await vllm.listModels(new AbortController().signal)).toEqual([{ id: 'qwen', created: expect.any(Number) }, { id: 'llama', created: expect.any(Number) }]);
    expect(sim!.requests[0]).toMatchObject({ method: 'GET', path: '/v1/models' });
  });

  it('countTokens(): vLLM\'s /tokenize counts the chat prompt, tool definitions included', async () => {
    const vllm = await setup();
    const signal = new AbortController().signal;
    const plain = await vllm.countTokens!({ model: MODEL, messages: USER }, signal);
    expect(plain).toBe(7);
    expect(sim!.requests.at(-1)).toMatchObject({ method: 'POST', path: '/tokenize', body: { model: MODEL, messages: USER } });
    const withTools = await vllm.countTokens!({ model: MODEL, messages: USER, tools: [WEATHER_TOOL] }, signal);
    expect(withTools).toBeGreaterThan(plain);
    expect(lastBody()).toMatchObject({ tools: [WEATHER_TOOL] });
  });
});

describe('vLLM backend: pass-through bytes (send)', () => {
  it('the client bytes reach vLLM as sent; the answer comes back as vLLM wrote it', async () => {
    const vllm = await setup();
    // Spacing and key order a re-serialization would change.
    const body = new TextEncoder().encode(`{ "messages" : [ {"role":"user","content":"What is the weather in Paris today?"} ],\n  "model": "${MODEL}", "top_k": 5 }`);
    const answer = await vllm.send(backendCall('openai.chat', body));
    expect(answer).toMatchObject({ status: 200, contentType: 'application/json' });
    const text = await answerText(answer);
    // vLLM's own fields, which no re-serialization through OpenAI's types would keep.
    expect(JSON.parse(text)).toMatchObject({ object: 'chat.completion', prompt_logprobs: null, kv_transfer_params: null, choices: [{ stop_reason: null }] });
    const record = sim!.requests[0]!;
    expect(record).toMatchObject({ method: 'POST', path: '/v1/chat/completions' });
    expect(record.headers['content-length']).toBe(String(body.length));
    expect(record.body).toEqual(JSON.parse(new TextDecoder().decode(body)));
    expect(record.headers).not.toHaveProperty('authorization');
  });

  it("a stream passes through as vLLM's SSE bytes, with the usage the dialect asked for", async () => {
    const vllm = await setup();
    const body = openAIChat.passThrough!(jsonBytes({ model: 'alias', messages: USER, stream: true }), { model: MODEL, stream: true });
    const answer = await vllm.send(backendCall('openai.chat', body, { stream: true }));
    expect(answer.contentType).toBe('text/event-stream; charset=utf-8');
    const text = await answerText(answer);
    const events = text.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(JSON.parse(events.at(-2)!.slice('data: '.length))).toMatchObject({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 5 } });
    expect(sim!.requests[0]!.body).toEqual({ stream_options: { include_usage: true }, model: MODEL, messages: USER, stream: true });
  });

  it('embeddings and legacy completions go to their own paths, bytes untouched', async () => {
    const vllm = await setup();
    const body = openAIEmbeddings.passThrough!(jsonBytes({ model: 'alias', input: 'lab', encoding_format: 'base64' }), { model: MODEL, stream: false });
    const answer = JSON.parse(await answerText(await vllm.send(backendCall('openai.embeddings', body))));
    expect(answer.data[0].embedding).toBe(Buffer.from(new Float32Array(embeddingVector('lab')).buffer).toString('base64'));
    expect(sim!.requests[0]).toMatchObject({ path: '/v1/embeddings', body: { model: MODEL, input: 'lab', encoding_format: 'base64' } });

    const completion = JSON.parse(await answerText(await vllm.send(backendCall('openai.completions', { model: MODEL, prompt: 'def fib(' })))) as { object: string };
    expect(completion.object).toBe('text_completion');
    expect(sim!.requests[1]).toMatchObject({ method: 'POST', path: '/v1/completions' });
  });

  it("suffix (fill-in-the-middle), which vLLM refuses: its 400 says what to do instead, with param 'suffix'", async () => {
    const vllm = await setup();
    const err = await gatewayError(() => vllm.send(backendCall('openai.completions', { model: MODEL, prompt: 'def fib(', suffix: '    return a' })));
    expect(err).toMatchObject({ code: 'unsupported', status: 400, param: 'suffix' });
    expect(err.message).toBe("'suffix' needs fill-in-the-middle text completions, which vllm does not offer: ask for a model served by Ollama (vllm: suffix is not currently supported)");
    // Other 400s of completions, and of chat, are vLLM's own words.
    const other = await gatewayError(() => vllm.send(backendCall('openai.completions', { model: MODEL, prompt: 'x', n: 0 })));
    expect(other).toMatchObject({ code: 'invalid_request', message: 'vllm: n must be at least 1.' });
  });

  it('the configured key goes as a bearer token on every call', async () => {
    const vllm = await setup({ apiKey: 'lab-key-1' }, { apiKey: 'lab-key-1' });
    await answerText(await vllm.send(backendCall('openai.chat', { model: MODEL, messages: USER })));
    await vllm.listModels(new AbortController().signal);
    expect(sim!.requests.map((r) => r.headers.authorization)).toEqual(['Bearer lab-key-1', 'Bearer lab-key-1']);
  });

  it("client headers the API defines go along, and the gateway's request id as x-request-id (vLLM logs it)", async () => {
    const vllm = await setup();
    await answerText(await vllm.send(backendCall('openai.chat', { model: MODEL, messages: USER }, { headers: { 'anthropic-beta': 'x' }, requestId: 'req-42' })));
    expect(sim!.requests[0]!.headers).toMatchObject({ 'anthropic-beta': 'x', 'x-request-id': 'req-42' });
    await completeInternal(vllm, request(), internalCall(MODEL, { requestId: 'req-43' }));
    expect(sim!.requests[1]!.headers['x-request-id']).toBe('req-43');
  });

  it('send() reports a dialect it does not speak as a rejected promise, not a throw', async () => {
    const vllm = await setup();
    let pending: Promise<unknown> | undefined;
    expect(() => { pending = vllm.send(backendCall('anthropic.messages', { model: MODEL, max_tokens: 10, messages: USER })); }).not.toThrow();
    expect((await gatewayError(pending!)).code).toBe('invalid_request');
  });

  it('a dialect vLLM does not speak → invalid_request, nothing sent', async () => {
    const vllm = await setup();
    const err = await gatewayError(() => vllm.send(backendCall('anthropic.messages', { model: MODEL, max_tokens: 10, messages: USER })));
    expect(err).toMatchObject({ code: 'invalid_request', message: 'vllm does not speak anthropic.messages' });
    expect(sim!.requests).toHaveLength(0);
  });
});

describe('vLLM backend errors', () => {
  it('500 → backend_error (502), naming the upstream status', async () => {
    const vllm = await setup({ faults: { status: 500 } });
    const err = await gatewayError(completeInternal(vllm, request(), internalCall(MODEL)));
    expect(err).toMatchObject({ code: 'backend_error', status: 502, retryable: true, message: 'vllm failed with 500: Internal Server Error' });
  });

  it('502 on a stream request → backend_error before any chunk', async () => {
    const vllm = await setup({ faults: { status: 502 } });
    const received: ChatChunk[] = [];
    const err = await gatewayError(collectChunks(streamInternal(vllm, request(), internalCall(MODEL)), received));
    expect(err).toMatchObject({ code: 'backend_error', status: 502, message: 'vllm failed with 502: Bad Gateway' });
    expect(received).toEqual([]);
  });

  it('503 → backend_unavailable with the Retry-After hint', async () => {
    const vllm = await setup({ faults: { status: 503, retryAfterSeconds: 2 } });
    const err = await gatewayError(completeInternal(vllm, request(), internalCall(MODEL)));
    expect(err).toMatchObject({ code: 'backend_unavailable', status: 503, retryable: true, retryAfterMs: 2000 });
  });

  it('429 → rate_limited with retryAfterMs (chat, stream, embeddings, pass-through); no retry of its own', async () => {
    const vllm = await setup({ faults: { status: 429, retryAfterSeconds: 3 } });
    expect(await gatewayError(completeInternal(vllm, request(), internalCall(MODEL)))).toMatchObject({ code: 'rate_limited', status: 429, retryable: true, retryAfterMs: 3000 });
    expect(await gatewayError(collectChunks(streamInternal(vllm, request(), internalCall(MODEL))))).toMatchObject({ code: 'rate_limited', retryAfterMs: 3000 });
    expect(await gatewayError(completeInternal(vllm, { form: 'embeddings', request: { model: MODEL, input: 'x' } }, internalCall(MODEL)))).toMatchObject({ code: 'rate_limited' });
    expect(await gatewayError(vllm.send(backendCall('openai.chat', { model: MODEL, messages: USER })))).toMatchObject({ code: 'rate_limited', retryAfterMs: 3000 });
    expect(sim!.requests).toHaveLength(4);
  });

  it('401 → unauthorized, and the key appears nowhere in the error', async () => {
    const vllm = await setup({ apiKey: 'lab-key-right' }, { apiKey: 'lab-key-WRONG-98765' });
    const err = await gatewayError(completeInternal(vllm, request(), internalCall(MODEL)));
    expect(err).toMatchObject({ code: 'unauthorized', status: 401, retryable: false, message: "vllm rejected the gateway's credentials (401)" });
    expect(sim!.requests[0]!.headers.authorization).toBe('Bearer lab-key-WRONG-98765');
    expect(everythingOf(err)).not.toMatch(/98765|WRONG/);
    expect((await gatewayError(vllm.listModels(new AbortController().signal))).code).toBe('unauthorized');
  });

  it('404 → model_not_found with the upstream message', async () => {
    const vllm = await setup();
    const err = await gatewayError(completeInternal(vllm, request(), internalCall('nope')));
    expect(err).toMatchObject({ code: 'model_not_found', status: 404, retryable: false, message: 'vllm: The model `nope` does not exist.' });
  });

  it.each([false, true])('400 → invalid_request with the upstream message and param (legacy error shape: %s)', async (legacyErrors) => {
    const vllm = await setup({ legacyErrors });
    const err = await gatewayError(vllm.send(backendCall('openai.chat', { model: MODEL })));
    expect(err).toMatchObject({ code: 'invalid_request', status: 400, retryable: false, param: 'messages' });
    expect(err.message).toContain("'loc': ('body', 'messages')");
  });

  it('connection refused → backend_unavailable', async () => {
    const closed = await startOpenAISimulator();
    await closed.close();
    backend = createVllmBackend({ url: closed.url, connectTimeoutMs: 2000 });
    const err = await gatewayError(completeInternal(backend, request(), internalCall(MODEL)));
    expect(err).toMatchObject({ code: 'backend_unavailable', retryable: true, message: 'vllm is unreachable: ECONNREFUSED' });
    expect(await gatewayError(backend.listModels(new AbortController().signal))).toMatchObject({ code: 'backend_unavailable', message: 'vllm is unreachable: ECONNREFUSED' });
  });

  it('no answer within headersTimeoutMs → timeout', async () => {
    const vllm = await setup({ faults: { stallBeforeFirstTokenMs: 10_000 } });
    const err = await gatewayError(completeInternal(vllm, request(), internalCall(MODEL, { headersTimeoutMs: 100 })));
    expect(err).toMatchObject({ code: 'timeout', status: 504, retryable: true, message: 'vllm did not answer within 100 ms' });
  });

  it('a malformed chunk mid-stream → backend_error saying the stream was malformed', async () => {
    const vllm = await setup({ faults: { malformedAfterChunks: 2 } });
    const received: ChatChunk[] = [];
    const err = await gatewayError(collectChunks(streamInternal(vllm, request(), internalCall(MODEL)), received));
    expect(err).toMatchObject({ code: 'backend_error', retryable: true, message: expect.stringContaining('sent a malformed stream event') });
    // What came before the bad event, at most (a read holding both is failed whole).
    expect(simText(2).startsWith(contentOf(received))).toBe(true);
  });

  it('a malformed non-streaming body → backend_error', async () => {
    const vllm = await setup({ faults: { malformedAfterChunks: 0 } });
    expect(await gatewayError(completeInternal(vllm, request(), internalCall(MODEL)))).toMatchObject({ code: 'backend_error', message: 'vllm sent a malformed answer' });
  });

  it('a connection dropped mid-stream → backend_error after the chunks before it', async () => {
    const vllm = await setup({ faults: { dropAfterChunks: 2 } });
    const received: ChatChunk[] = [];
    const err = await gatewayError(collectChunks(streamInternal(vllm, request(), internalCall(MODEL)), received));
    expect(err).toMatchObject({ code: 'backend_error', message: 'vllm closed the connection mid-answer' });
    expect(contentOf(received)).toBe(simText(2));
  });

  it("vLLM's error event inside a 200 stream → backend_error with its message", async () => {
    sim = await startSimServer({}, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: MODEL, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] })}\n\n`);
      res.write(`data: ${JSON.stringify({ error: { message: 'CUDA out of memory', type: 'InternalServerError', param: null, code: 500 } })}\n\n`);
      res.end('data: [DONE]\n\n');
    });
    backend = createVllmBackend({ url: sim.url, connectTimeoutMs: 2000 });
    const err = await gatewayError(collectChunks(streamInternal(backend, request(), internalCall(MODEL))));
    expect(err).toMatchObject({ code: 'backend_error', message: expect.stringMatching(/failed mid-stream: CUDA out of memory$/) });
  });

  it('a stream that ends without [DONE] → backend_error', async () => {
    sim = await startSimServer({}, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: MODEL, choices: [{ index: 0, delta: { content: 'The' }, logprobs: null, finish_reason: null }] })}\n\n`);
    });
    backend = createVllmBackend({ url: sim.url, connectTimeoutMs: 2000 });
    const received: ChatChunk[] = [];
    const err = await gatewayError(collectChunks(streamInternal(backend, request(), internalCall(MODEL)), received));
    expect(err).toMatchObject({ code: 'backend_error', message: 'vllm ended the stream before the answer was complete' });
    expect(contentOf(received)).toBe('The');
  });

  it('an abort mid-stream → cancelled, and the backend request is aborted', async () => {
    const vllm = await setup({ tokens: 200, tokenIntervalMs: 10 });
    const controller = new AbortController();
    let received = 0;
    const err = await gatewayError(async () => {
      for await (const _chunks of streamInternal(vllm, request(), internalCall(MODEL, { signal: controller.signal }))) if (++received === 3) controller.abort();
    });
    expect(err).toMatchObject({ code: 'cancelled', status: 499, retryable: false });
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
    expect(sim!.requests[0]!.completed).toBe(false);
  });

  it('an abort during a non-streaming call → cancelled, the simulator sees the abort', async () => {
    const vllm = await setup({ faults: { stallBeforeFirstTokenMs: 10_000 } });
    const controller = new AbortController();
    const pending = completeInternal(vllm, request(), internalCall(MODEL, { signal: controller.signal }));
    await expect.poll(() => sim!.requests.length).toBe(1);
    controller.abort();
    expect(await gatewayError(pending)).toMatchObject({ code: 'cancelled' });
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
  });

  it('breaking out of the stream early aborts the backend request', async () => {
    const vllm = await setup({ tokens: 200, tokenIntervalMs: 10 });
    for await (const chunks of streamInternal(vllm, request(), internalCall(MODEL))) if (contentOf(chunks as ChatChunk[])) break;
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
  });
});
